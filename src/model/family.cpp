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
  std::string known;
  for (const Family* f : all_families()) {
    if (model_type == f->model_type) return *f;
    known += (known.empty() ? "" : ", ") + std::string(f->model_type);
  }
  throw std::runtime_error(where + ": model_type '" + model_type + "' is not supported (emotune reads " + known + ")");
}

}  // namespace emotune::model
