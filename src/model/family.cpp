#include "model/family.h"

#include <stdexcept>

#include "model/bert.h"
#include "model/distilbert.h"
#include "model/mpnet.h"
#include "model/roberta.h"

namespace emotune::model {

const std::vector<const Family*>& all_families() {
  static const std::vector<const Family*> families{&distilbert_family(), &bert_family(), &roberta_family(),
                                                   &mpnet_family()};
  return families;
}

const Family& find_family(const std::string& model_type, const std::string& where) {
  const FamilyConfig& config = family_config(model_type, where);  // names the supported types when unknown
  for (const Family* f : all_families())
    if (&f->config == &config) return *f;
  throw std::logic_error("model_type '" + model_type + "' has a config reader but no family (model/family.cpp)");
}

}  // namespace emotune::model
