// emotune._emotune, the native half of the Python package (python/emotune/ is the other): a loaded
// model (python/model.h) and the CLI's commands run in this process (cli::execute). Every call
// releases the GIL while the library works. Failures become Python exceptions here and nowhere else,
// with the CLI's one-line messages (settings named as the keyword arguments are: max_length):
// FileNotFoundError for a missing path, ValueError for a setting or an input emotune cannot use
// (TypeError for an option no command has), OSError for the system's failures, MemoryError, and
// RuntimeError for emotune's own bugs.
#include <c10/util/Exception.h>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/errors.h"
#include "python/model.h"
#include "runtime/runtime.h"
#include "util/errors.h"

namespace py = pybind11;

namespace emotune::python {
namespace {

std::string message_of(const std::exception& e) { return printable(cli::first_line(render_settings(e.what(), false))); }

std::string internal(const std::string& what) {
  return "emotune internal error: " + printable(cli::first_line(what)) +
         " (a bug in emotune, not in your input: please report it with the call that caused it)";
}

void translate(std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const py::error_already_set&) {
    throw;  // a Python exception on its way out (a progress callback's)
  } catch (const py::builtin_exception&) {
    throw;  // pybind11's own, which it translates
  } catch (const CLI::ExtrasError& e) {
    PyErr_SetString(PyExc_TypeError, ("unexpected option: " + cli::first_line(e.what())).c_str());
  } catch (const CLI::ParseError& e) {
    PyErr_SetString(PyExc_ValueError, cli::first_line(e.what()).c_str());
  } catch (const std::bad_alloc&) {
    PyErr_SetString(PyExc_MemoryError, "out of memory (a smaller batch_size or max_length, or a smaller model, needs less)");
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, internal(e.what_without_backtrace()).c_str());
  } catch (const NotFoundError& e) {
    PyErr_SetString(PyExc_FileNotFoundError, message_of(e).c_str());
  } catch (const std::exception& e) {
    switch (classify(e)) {
      case Failure::Setting:
      case Failure::Input:
        PyErr_SetString(PyExc_ValueError, message_of(e).c_str());
        return;
      case Failure::System:
        PyErr_SetString(PyExc_OSError, message_of(e).c_str());
        return;
      case Failure::Internal:
        PyErr_SetString(PyExc_RuntimeError, internal(e.what()).c_str());
        return;
    }
  }
}

template <typename T>
py::array_t<float> rows(const std::vector<T>& values, std::size_t n, std::size_t labels) {
  py::array_t<float> out({n, labels});
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

// The CLI's command line run here; train's progress goes to on_step(step, total, epoch, epochs, loss,
// examples_per_s) when given (called with the GIL held).
int run_command(const std::vector<std::string>& args, const std::function<void(py::tuple)>& on_step) {
  cli::Hooks hooks;
  if (on_step)
    hooks.on_train_step = [&on_step](const train::StepProgress& p) {
      const py::gil_scoped_acquire gil;
      on_step(py::make_tuple(p.step, p.total_steps, p.epoch, p.epochs, p.loss, p.examples_per_s));
    };
  const py::gil_scoped_release released;
  return cli::execute(args, hooks);
}

}  // namespace
}  // namespace emotune::python

PYBIND11_MODULE(_emotune, m) {
  using namespace emotune::python;
  m.doc() = "emotune's native module; use the emotune package";
  m.attr("__version__") = EMOTUNE_VERSION;
  py::register_exception_translator(translate);

  py::class_<ModelOptions>(m, "ModelOptions")
      .def(py::init<>())
      .def_readwrite("path", &ModelOptions::path)
      .def_readwrite("device", &ModelOptions::device)
      .def_readwrite("precision", &ModelOptions::precision)
      .def_readwrite("threads", &ModelOptions::threads)
      .def_readwrite("offline", &ModelOptions::offline)
      .def_readwrite("max_length", &ModelOptions::max_length)
      .def_readwrite("batch_size", &ModelOptions::batch_size)
      .def_readwrite("long_text", &ModelOptions::long_text)
      .def_readwrite("window_stride", &ModelOptions::window_stride)
      .def_readwrite("window_combine", &ModelOptions::window_combine);

  py::class_<Model>(m, "Model")
      .def(py::init<const ModelOptions&>(), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("directory", &Model::directory)
      .def_property_readonly("labels", &Model::labels)
      .def_property_readonly("tuned_thresholds", &Model::tuned_thresholds)
      .def(
          "scores",
          [](Model& model, const std::vector<std::string>& texts) {
            Scores s;
            {
              const py::gil_scoped_release released;
              s = model.scores(texts);
            }
            return py::make_tuple(rows(s.probs, s.rows, s.labels), rows(s.logits, s.rows, s.labels), s.truncated);
          },
          "(probabilities [n, labels], logits [n, labels], texts cut) of a list of texts")
      .def("explain", &Model::explain, py::call_guard<py::gil_scoped_release>(),
           "the explanations of one text as a JSON array");

  m.def("run_command", &run_command, py::arg("args"), py::arg("on_step") = nullptr,
        "runs an emotune command line (without the program's name) here; returns its exit code");
  m.def("better_blas_kernels", &emotune::runtime::better_blas_kernels,
        "the OPENBLAS_CORETYPE this CPU deserves when OpenBLAS chose older kernels, else None");
  m.def("blas_core_name", &emotune::runtime::blas_core_name);
}
