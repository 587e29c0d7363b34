#include "infer/calibration.h"

#include <algorithm>
#include <cmath>

#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

namespace emotune::infer {

namespace {

constexpr double kMinTemperature = 1e-3, kMaxTemperature = 1e3, kMaxBias = 1e3;

// `values` (a list in the order of `names`) as numbers within [lo, hi].
std::vector<float> numbers_in(const nlohmann::json& values, std::size_t count, double lo, double hi,
                              const std::string& where) {
  if (!values.is_array() || values.size() != count)
    throw InputError(where + " must be a list of " + std::to_string(count) + " numbers, one per label");
  std::vector<float> out;
  for (const auto& v : values) {
    if (!v.is_number() || !(v.get<double>() >= lo && v.get<double>() <= hi))
      throw InputError(where + " must hold numbers in [" + nlohmann::json(lo).dump() + ", " + nlohmann::json(hi).dump() +
                       "]");
    out.push_back(v.get<float>());
  }
  return out;
}

}  // namespace

Calibration load_calibration(const std::filesystem::path& model_dir, const std::vector<std::string>& labels) {
  const auto path = model_dir / "calibration.json";
  if (!std::filesystem::exists(path)) return {};
  return load_calibration_file(path, labels);
}

Calibration load_calibration_file(const std::filesystem::path& path, const std::vector<std::string>& labels) {
  const std::string file = path.string();
  const nlohmann::json j = util::read_json_file(path);
  if (!j.is_object()) throw InputError(file + ": expected an object with \"fit\", \"labels\", \"temperature\", \"bias\"");
  Calibration c;
  const auto fit = j.value("fit", nlohmann::json());
  const auto& fits = calibration_fits();
  if (!fit.is_string() || std::find(fits.begin(), fits.end(), fit.get<std::string>()) == fits.end())
    throw InputError(file + ": \"fit\" must be one of temperature, temperature-per-label, platt, platt-per-label");
  c.fit = fit.get<std::string>();
  const auto names = j.value("labels", nlohmann::json());
  if (!names.is_array() || names.size() != labels.size())
    throw InputError(file + ": \"labels\" must list the model's " + std::to_string(labels.size()) + " labels");
  const auto temperature = numbers_in(j.value("temperature", nlohmann::json()), labels.size(), kMinTemperature,
                                      kMaxTemperature, file + ": \"temperature\"");
  const auto bias = numbers_in(j.value("bias", nlohmann::json()), labels.size(), -kMaxBias, kMaxBias, file + ": \"bias\"");
  c.temperature.assign(labels.size(), 0.0f);
  c.bias.assign(labels.size(), 0.0f);
  std::vector<bool> seen(labels.size(), false);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto it = names[i].is_string() ? std::find(labels.begin(), labels.end(), names[i].get<std::string>()) : labels.end();
    if (it == labels.end()) throw InputError(file + ": label " + names[i].dump() + " is not one of the model's labels");
    const auto id = static_cast<std::size_t>(it - labels.begin());
    if (seen[id]) throw InputError(file + ": label " + names[i].dump() + " is listed twice");
    seen[id] = true;
    c.temperature[id] = temperature[i];
    c.bias[id] = bias[i];
  }
  return c;
}

void save_calibration(const std::filesystem::path& model_dir, const std::vector<std::string>& labels,
                      const Calibration& c, const nlohmann::ordered_json& about) {
  if (c.temperature.size() != labels.size() || c.bias.size() != labels.size())
    throw InternalError("a calibration for labels that are not the model's");
  const nlohmann::ordered_json j{{"fit", c.fit},
                                 {"formula", "score = sigmoid(logit / temperature + bias)"},
                                 {"labels", labels},
                                 {"temperature", c.temperature},
                                 {"bias", c.bias},
                                 {"fitted_on", about}};
  util::write_text_atomically(model_dir / "calibration.json", j.dump(2) + "\n");
}

}  // namespace emotune::infer
