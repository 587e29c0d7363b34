// Where downloaded models and data live: emotune's own cache, and the Hugging Face hub cache that
// Python users already have (read in place, never copied).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace emotune::fetch {

// $EMOTUNE_HOME, else $XDG_CACHE_HOME/emotune, else ~/.cache/emotune.
std::filesystem::path emotune_home();

// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path hf_hub_cache();

// True when HF_HUB_OFFLINE is 1/true/yes/on.
bool hub_offline_from_env();

// emotune's cache folder for a hub model at a revision: <home>/models/ORG--NAME/REV.
std::filesystem::path model_cache_dir(const std::string& repo, const std::string& revision);

// emotune's cache folder for GoEmotions: <home>/datasets/goemotions.
std::filesystem::path goemotions_cache_dir();

// A model directory has what emotune loads: config.json, model.safetensors or pytorch_model.bin, and a vocabulary.
bool is_complete_model_dir(const std::filesystem::path& dir);

// The snapshot folder of `repo` at `revision` (a branch or tag named in refs/, or a commit hash) in
// the Hugging Face cache, when it holds a complete model.
std::optional<std::filesystem::path> find_in_hf_cache(const std::string& repo, const std::string& revision);

}  // namespace emotune::fetch
