#include "infer/thresholds.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

namespace emotune::infer {

std::vector<float> load_thresholds(const std::filesystem::path& model_dir, const std::vector<std::string>& labels) {
  const auto path = model_dir / "thresholds.json";
  if (!std::filesystem::exists(path)) return std::vector<float>(labels.size(), 0.5f);
  return load_thresholds_file(path, labels);
}

std::vector<float> load_thresholds_file(const std::filesystem::path& path, const std::vector<std::string>& labels) {
  std::vector<float> t(labels.size(), 0.5f);
  const nlohmann::json j = util::read_json_file(path);
  const auto values = j.is_object() ? j.value("values", nlohmann::json()) : nlohmann::json();
  if (values.is_array() && values.size() == labels.size()) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (!values[i].is_number() || !(values[i].get<double>() >= 0 && values[i].get<double>() <= 1))
        throw std::runtime_error(path.string() + ": thresholds must be numbers in [0, 1]");
      t[i] = values[i].get<float>();
    }
  } else if (values.is_object()) {
    for (const auto& [label, value] : values.items()) {
      const auto it = std::find(labels.begin(), labels.end(), label);
      if (it == labels.end()) throw std::runtime_error(path.string() + ": '" + label + "' is not one of the model's labels");
      if (!value.is_number() || !(value.get<double>() >= 0 && value.get<double>() <= 1))
        throw std::runtime_error(path.string() + ": the threshold of '" + label + "' must be a number in [0, 1]");
      t[static_cast<std::size_t>(it - labels.begin())] = value.get<float>();
    }
  } else if (values.is_array()) {
    throw std::runtime_error(path.string() + ": " + std::to_string(values.size()) + " thresholds for " +
                             std::to_string(labels.size()) + " labels");
  } else {
    throw std::runtime_error(path.string() + ": expected \"values\": one threshold per label");
  }
  return t;
}

void save_thresholds(const std::filesystem::path& model_dir, const std::vector<std::string>& labels,
                     const std::vector<float>& values, const std::vector<std::string>& model_labels,
                     const ThresholdsOrigin& origin) {
  if (values.size() != labels.size() ||
      !std::is_permutation(labels.begin(), labels.end(), model_labels.begin(), model_labels.end()))
    throw InternalError("thresholds for labels that are not the model's");
  nlohmann::ordered_json by_name = nlohmann::ordered_json::object();  // the model's order may differ
  for (std::size_t i = 0; i < labels.size(); ++i) by_name[labels[i]] = values[i];
  const nlohmann::ordered_json j{{"source", origin.source},
                                 {"file", origin.file},
                                 {"taxonomy", origin.taxonomy},
                                 {"labels", labels},
                                 {"values", labels == model_labels ? nlohmann::ordered_json(values) : by_name}};
  util::write_text_atomically(model_dir / "thresholds.json", j.dump(2) + "\n");
}

}  // namespace emotune::infer
