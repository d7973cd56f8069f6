// rrh._rrh: the Python binding of the one C++ shim (rrh::shim). The pure-Python layer
// (python/rrh/__init__.py) gives it the seed module's names, type hints and docstrings;
// this file converts types and manages the GIL and the shim's lifetime:
//
// - Every call that may block runs with the GIL released: the constructor and the
//   destructor (they start and join the shim's threads), flush, and every event call
//   (a full outbox blocks the caller under overflow_policy::block).
// - Command handlers run on the shim's dispatcher thread and hold the GIL only while
//   Python code runs.
// - A Python callable owned by the shim may be copied and released on the dispatcher
//   thread, which holds no GIL: it lives in a `python_callable` whose destructor takes
//   the GIL (and leaks the reference once the interpreter is finalizing).
// - Every live shim is closed by an atexit hook, before the interpreter finalizes: a
//   dispatcher thread that asked for the GIL during finalization would be ended by the
//   interpreter in the middle of C++ code.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "rrh/shim.hpp"

namespace py = pybind11;

namespace {

/// rrh._rrh.Error, raised for every rrh::error; created at module import.
PyObject* error_type = nullptr;

/// True while Python code may still run: not before initialization, not once the
/// interpreter is finalizing (then a thread asking for the GIL is ended by Python).
bool interpreter_usable() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsInitialized() != 0 && Py_IsFinalizing() == 0;
#else
  return Py_IsInitialized() != 0 && _Py_IsFinalizing() == 0;
#endif
}

/// Raises rrh._rrh.Error("<code>: <detail>") with attributes `code` and `detail`.
/// Needs the GIL.
[[noreturn]] void raise_error(const rrh::error& failure) {
  const std::string code = rrh::to_string(failure.code);
  py::object type = py::reinterpret_borrow<py::object>(error_type);
  py::object instance = type(code + ": " + failure.detail);
  instance.attr("code") = code;
  instance.attr("detail") = failure.detail;
  PyErr_SetObject(error_type, instance.ptr());
  throw py::error_already_set();
}

/// Turns an error status into a Python exception. Needs the GIL.
void check(const rrh::status& result) {
  if (!result) raise_error(result.error());
}

/// Text from the wire may hold invalid UTF-8 (the codec does not check it): keep the
/// bytes recoverable instead of failing the whole command.
py::str text(const std::string& value) {
  PyObject* decoded =
      PyUnicode_DecodeUTF8(value.data(), static_cast<Py_ssize_t>(value.size()), "surrogateescape");
  if (decoded == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(decoded);
}

py::object to_python(const std::string& value) { return text(value); }
py::object to_python(std::uint64_t value) { return py::int_(value); }
py::object to_python(const rrh::byte_buffer& value) {
  return py::bytes(reinterpret_cast<const char*>(value.data()), value.size());
}

/// Walks a command body's fields (the protocol's `fields` template) into a dict.
struct field_writer {
  py::dict& data;
  template <class Value>
  void operator()(const char* name, const Value& value,
                  rrh::field_rule /*rule*/ = rrh::field_rule::plain) const {
    data[name] = to_python(value);
  }
};

/// The dict a Python handler receives: the envelope plus the kind's fields under "data"
/// (checkpoint as bytes).
py::dict command_to_dict(const rrh::command& message) {
  py::dict data;
  std::visit(
      [&data](const auto& body) {
        using body_type = std::decay_t<decltype(body)>;
        field_writer writer{data};
        body_type::fields(body, writer);
      },
      message.body);
  py::dict result;
  result["id"] = py::int_(message.id);
  result["kind"] = py::str(std::string(rrh::kind_name(message.body)));
  result["node"] = text(message.node);
  result["ts_ms"] = py::int_(message.ts_ms);
  result["episode"] = text(message.episode);
  result["data"] = std::move(data);
  return result;
}

/// A handler's answer: None or True accept; False refuses; a str refuses with that
/// reason; a (bool, str) pair is taken as is. Needs the GIL.
rrh::command_result interpret_answer(const py::handle& answer) {
  if (answer.is_none()) return rrh::command_result::accept();
  if (py::isinstance<py::bool_>(answer)) {
    return answer.cast<bool>() ? rrh::command_result::accept()
                               : rrh::command_result::refuse("refused by the handler");
  }
  if (py::isinstance<py::str>(answer)) return rrh::command_result::refuse(answer.cast<std::string>());
  if (py::isinstance<py::tuple>(answer) && py::len(answer) == 2) {
    const auto pair = answer.cast<py::tuple>();
    const bool accepted = py::bool_(pair[0]);
    const std::string reason = pair[1].is_none() ? std::string() : py::str(pair[1]).cast<std::string>();
    return rrh::command_result{accepted, reason};
  }
  return rrh::command_result::refuse("handler returned " +
                                     py::str(py::type::handle_of(answer).attr("__name__")).cast<std::string>() +
                                     "; expected None, a bool or a str");
}

/// The shim whose handler the current thread is running, if any: the dispatcher thread
/// must never destroy (join) itself.
thread_local const rrh::shim* dispatching_shim = nullptr;

/// Owns one reference to a Python object and may be destroyed on any thread.
class python_callable {
 public:
  explicit python_callable(py::object callable) : callable_(callable.release().ptr()) {}
  ~python_callable() {
    if (!interpreter_usable()) return;  // finalizing: leaking one reference is harmless
    const py::gil_scoped_acquire gil;
    Py_DECREF(callable_);
  }
  python_callable(const python_callable&) = delete;
  python_callable& operator=(const python_callable&) = delete;

  /// Calls the object with one argument. Needs the GIL.
  py::object operator()(const py::object& argument) const {
    return py::reinterpret_borrow<py::object>(callable_)(argument);
  }

 private:
  PyObject* callable_;
};

/// Wraps a Python callable as a command handler. The std::function is copied on the
/// dispatcher thread without the GIL, hence the shared_ptr rather than a py::object.
rrh::command_handler make_handler(const rrh::shim* owner,
                                  std::shared_ptr<const python_callable> shared) {
  return [owner, shared](const rrh::command& message) -> rrh::command_result {
    if (!interpreter_usable()) {
      return rrh::command_result::refuse("the Python interpreter is shutting down");
    }
    const py::gil_scoped_acquire gil;
    dispatching_shim = owner;
    rrh::command_result result;
    try {
      result = interpret_answer((*shared)(command_to_dict(message)));
    } catch (py::error_already_set& failure) {
      std::string what = py::str(failure.type().attr("__name__")).cast<std::string>();
      const std::string detail = py::str(failure.value()).cast<std::string>();
      if (!detail.empty()) what += ": " + detail;
      result = rrh::command_result::refuse("handler raised " + what);
    } catch (const std::exception& failure) {
      result = rrh::command_result::refuse(std::string("handler failed: ") + failure.what());
    }
    dispatching_shim = nullptr;
    return result;
  };
}

/// Destroys a shim without the GIL (its destructor joins the dispatcher thread, which
/// may be waiting for the GIL in a handler), and never on its own dispatcher thread.
void destroy_shim(rrh::shim* node) {
  if (dispatching_shim == node) {
    std::thread([node] { delete node; }).detach();
    return;
  }
  if (PyGILState_Check() != 0) {
    const py::gil_scoped_release nogil;
    delete node;
  } else {
    delete node;
  }
}

/// settings from a dict of str -> bool | int | float | str. Needs the GIL.
rrh::settings to_settings(const py::dict& values) {
  rrh::settings result;
  for (const auto& [key, value] : values) {
    if (!py::isinstance<py::str>(key)) throw py::type_error("resilience keys must be str");
    const auto name = key.cast<std::string>();
    if (py::isinstance<py::bool_>(value)) {
      result[name] = value.cast<bool>();
    } else if (py::isinstance<py::int_>(value)) {
      result[name] = value.cast<std::int64_t>();
    } else if (py::isinstance<py::float_>(value)) {
      result[name] = value.cast<double>();
    } else if (py::isinstance<py::str>(value)) {
      result[name] = value.cast<std::string>();
    } else {
      throw py::type_error("resilience['" + name + "'] must be bool, int, float or str");
    }
  }
  return result;
}

rrh::byte_buffer to_bytes(const py::bytes& value) {
  const std::string_view view = value;
  return rrh::byte_buffer(view.begin(), view.end());
}

/// The object behind rrh._rrh._Shim. The rrh::shim is shared so that a call running
/// without the GIL keeps it alive while another thread closes it.
class python_shim;
std::set<python_shim*>& live_shims() {
  static std::set<python_shim*> shims;  // guarded by the GIL
  return shims;
}

class python_shim {
 public:
  explicit python_shim(rrh::shim_config config) {
    rrh::shim* created = nullptr;
    {
      const py::gil_scoped_release nogil;
      created = new rrh::shim(std::move(config));
    }
    node_ = std::shared_ptr<rrh::shim>(created, destroy_shim);
    live_shims().insert(this);
  }
  ~python_shim() {
    live_shims().erase(this);
    close();
  }
  python_shim(const python_shim&) = delete;
  python_shim& operator=(const python_shim&) = delete;

  /// The shim, or rrh._rrh.Error(closed). Needs the GIL.
  std::shared_ptr<rrh::shim> get() const {
    if (!node_) raise_error(rrh::make_error(rrh::errc::closed, "the shim is closed"));
    return node_;
  }

  /// Stops the shim's threads; later calls raise Error(closed). Idempotent.
  void close() {
    auto node = std::move(node_);
    node_.reset();
    node.reset();  // destroy_shim releases the GIL while it joins
    // Drops the references to the handlers, which breaks the usual reference cycle
    // (a handler closing over the object that owns this shim).
    handlers_.clear();
  }

  bool closed() const { return !node_; }

  /// Runs `call(shim&)` with the GIL released and raises its error, if any.
  template <class Call>
  void run(Call&& call) const {
    const auto node = get();
    rrh::status result = rrh::ok();
    {
      const py::gil_scoped_release nogil;
      result = call(*node);
    }
    check(result);
  }

  /// Installs (or, with None, removes) the handler of a command kind.
  void set_handler(const std::string& kind, const py::object& callable) {
    const auto node = get();
    std::shared_ptr<const python_callable> shared;
    rrh::command_handler handler;
    if (!callable.is_none()) {
      if (PyCallable_Check(callable.ptr()) == 0) {
        throw py::type_error("a handler must be callable or None");
      }
      shared = std::make_shared<const python_callable>(callable);
      handler = make_handler(node.get(), shared);
    }
    {
      // The shim swaps handlers under its mutex; never wait for it holding the GIL.
      const py::gil_scoped_release nogil;
      node->set_handler(kind, std::move(handler));
    }
    // This map holds a reference to every installed callable, so the one the shim just
    // dropped is released here, with the GIL, not under the shim's mutex.
    handlers_[kind] = std::move(shared);
  }

  /// Counters, read without the GIL (the shim's mutex is never awaited with it).
  rrh::shim_stats stats() const {
    const auto node = get();
    const py::gil_scoped_release nogil;
    return node->stats();
  }

 private:
  std::shared_ptr<rrh::shim> node_;
  std::map<std::string, std::shared_ptr<const python_callable>> handlers_;
};

/// atexit: closes every shim while the interpreter is still whole.
void close_all_shims() {
  const auto shims = live_shims();  // close() does not erase; copy anyway for safety
  for (auto* shim : shims) shim->close();
}

std::string overflow_name(rrh::overflow_policy policy) {
  return policy == rrh::overflow_policy::block ? "block" : "error";
}

rrh::overflow_policy overflow_from_name(const std::string& name) {
  if (name == "block") return rrh::overflow_policy::block;
  if (name == "error") return rrh::overflow_policy::error;
  throw py::value_error("outbox_overflow must be 'block' or 'error', not '" + name + "'");
}

rrh::shim_config unwrap(rrh::expected<rrh::shim_config> loaded) {
  if (!loaded) raise_error(loaded.error());
  return std::move(loaded).value();
}

}  // namespace

PYBIND11_MODULE(_rrh, module) {
  module.doc() =
      "Binding of the rrh C++ agent shim (rrh::shim). Use the `rrh` package, which wraps "
      "it with the seed module's API.";

  error_type = PyErr_NewExceptionWithDoc(
      "rrh._rrh.Error",
      "An rrh operation failed. `code` is the stable error name (invalid_id, too_large, "
      "outbox_full, timeout, closed, invalid_argument, config, ...); `detail` says why.",
      PyExc_RuntimeError, nullptr);
  if (error_type == nullptr) throw py::error_already_set();
  module.add_object("Error", py::handle(error_type));  // the module keeps a reference too

  module.attr("PROTOCOL_VERSION") = rrh::protocol_version;
  module.attr("CHECKPOINT_BYTES_MAX") = rrh::checkpoint_bytes_max;
  module.attr("TEXT_LENGTH_MAX") = rrh::text_length_max;
  module.attr("ID_LENGTH_MAX") = rrh::id_length_max;
  module.def("is_valid_id", [](const std::string& text) { return rrh::is_valid_id(text); },
             py::arg("text"), "True when `text` is a valid rrh id: 1-128 of A-Za-z0-9._:@-.");

  py::class_<rrh::shim_config>(module, "ShimConfig",
                               "A shim's configuration (rrh::shim_config); see the README's "
                               "'Shim configuration' table.")
      .def(py::init<>())
      .def_readwrite("node_id", &rrh::shim_config::node_id)
      .def_readwrite("events_endpoint", &rrh::shim_config::events_endpoint)
      .def_readwrite("commands_endpoint", &rrh::shim_config::commands_endpoint)
      .def_readwrite("heartbeat_interval_ms", &rrh::shim_config::heartbeat_interval_ms)
      .def_readwrite("outbox_capacity", &rrh::shim_config::outbox_capacity)
      .def_property(
          "outbox_overflow",
          [](const rrh::shim_config& config) { return overflow_name(config.outbox_overflow); },
          [](rrh::shim_config& config, const std::string& name) {
            config.outbox_overflow = overflow_from_name(name);
          })
      .def_readwrite("outbox_block_timeout_ms", &rrh::shim_config::outbox_block_timeout_ms)
      .def_readwrite("retransmit_initial_ms", &rrh::shim_config::retransmit_initial_ms)
      .def_readwrite("retransmit_max_ms", &rrh::shim_config::retransmit_max_ms)
      .def_readwrite("retransmit_batch_max", &rrh::shim_config::retransmit_batch_max)
      .def_readwrite("command_dedup_window", &rrh::shim_config::command_dedup_window)
      .def_readwrite("command_queue_max", &rrh::shim_config::command_queue_max)
      .def_readwrite("supervisor", &rrh::shim_config::supervisor)
      .def_property(
          "security",
          [](const rrh::shim_config& config) { return std::string(rrh::to_string(config.security)); },
          [](rrh::shim_config& config, const std::string& name) {
            auto parsed = rrh::parse_bus_security(name, "security");
            if (!parsed) throw py::value_error(parsed.error().detail);
            config.security = parsed.value();
          })
      .def_readwrite("curve_secret_key_file", &rrh::shim_config::curve_secret_key_file)
      .def_readwrite("curve_server_key_file", &rrh::shim_config::curve_server_key_file)
      .def_static("from_yaml_file",
                  [](const std::string& path) { return unwrap(rrh::shim_config::from_yaml_file(path)); },
                  py::arg("path"), "Reads a YAML file whose keys are the field names.")
      .def_static(
          "from_environment",
          [](const rrh::shim_config* base) {
            return unwrap(base == nullptr ? rrh::shim_config::from_environment()
                                          : rrh::shim_config::from_environment(*base));
          },
          py::arg("base") = py::none(),
          "Overrides `base` (default: the defaults) with the RRH_* variables that are set; "
          "RRH_CONFIG names a YAML file read first.")
      .def("validate", [](const rrh::shim_config& config) { check(config.validate()); },
           "Raises Error(invalid_argument/invalid_id) when a field is out of range.");

  py::class_<python_shim>(module, "_Shim", "One node on the rrh bus (rrh::shim).")
      .def(py::init<rrh::shim_config>(), py::arg("config"))
      .def_property_readonly("node_id", [](const python_shim& self) { return self.get()->node_id(); })
      .def_property_readonly("incarnation",
                             [](const python_shim& self) { return self.get()->incarnation(); })
      .def_property_readonly("closed", &python_shim::closed)
      .def("close", &python_shim::close)
      .def(
          "start_episode",
          [](const python_shim& self, const std::string& episode_id, const std::string& name,
             const py::dict& resilience, const std::vector<std::string>& agents) {
            const auto values = to_settings(resilience);
            self.run([&](rrh::shim& node) { return node.start_episode(episode_id, name, values, agents); });
          },
          py::arg("episode_id"), py::arg("name") = "", py::arg("resilience") = py::dict(),
          py::arg("agents") = std::vector<std::string>{})
      .def(
          "start_episode_from_file",
          [](const python_shim& self, const std::string& path) {
            self.run([&](rrh::shim& node) { return node.start_episode_from_file(path); });
          },
          py::arg("path"))
      .def(
          "end_episode",
          [](const python_shim& self, const std::string& outcome) {
            self.run([&](rrh::shim& node) { return node.end_episode(outcome); });
          },
          py::arg("outcome") = "completed")
      .def(
          "record_episode_error",
          [](const python_shim& self, const std::string& error_type_name, const std::string& message,
             const std::string& agent) {
            self.run([&](rrh::shim& node) {
              return node.record_episode_error(error_type_name, message, agent);
            });
          },
          py::arg("error_type"), py::arg("message"), py::arg("agent") = "")
      .def(
          "register_agent",
          [](const python_shim& self, const std::string& agent_id, const std::string& pool,
             const std::vector<std::string>& capabilities, const std::string& supervisor,
             std::uint64_t watchdog_timeout_ms) {
            const rrh::agent_options options{pool, capabilities, supervisor, watchdog_timeout_ms};
            self.run([&](rrh::shim& node) { return node.register_agent(agent_id, options); });
          },
          py::arg("agent_id"), py::arg("pool") = "",
          py::arg("capabilities") = std::vector<std::string>{}, py::arg("supervisor") = "",
          py::arg("watchdog_timeout_ms") = 0)
      .def(
          "unregister_agent",
          [](const python_shim& self, const std::string& agent_id, const std::string& reason) {
            self.run([&](rrh::shim& node) { return node.unregister_agent(agent_id, reason); });
          },
          py::arg("agent_id"), py::arg("reason") = "")
      .def(
          "record_task_started",
          [](const python_shim& self, const std::string& agent_id, const std::string& task_id,
             std::uint64_t attempt) {
            self.run([&](rrh::shim& node) { return node.record_task_started(agent_id, task_id, attempt); });
          },
          py::arg("agent_id"), py::arg("task_id"), py::arg("attempt") = 1)
      .def(
          "record_failed_task",
          [](const python_shim& self, const std::string& agent_id, const std::string& task_id,
             const std::string& error_type_name, const std::string& message, bool retryable,
             std::uint64_t attempt, const py::bytes& checkpoint, const std::string& pool) {
            const rrh::task_failure failure{error_type_name, message,          retryable,
                                            attempt,         to_bytes(checkpoint), pool};
            self.run([&](rrh::shim& node) { return node.record_failed_task(agent_id, task_id, failure); });
          },
          py::arg("agent_id"), py::arg("task_id"), py::arg("error_type"), py::arg("message"),
          py::arg("retryable") = true, py::arg("attempt") = 1, py::arg("checkpoint") = py::bytes(),
          py::arg("pool") = "")
      .def(
          "record_task_succeeded",
          [](const python_shim& self, const std::string& agent_id, const std::string& task_id,
             std::uint64_t attempt) {
            self.run([&](rrh::shim& node) { return node.record_task_succeeded(agent_id, task_id, attempt); });
          },
          py::arg("agent_id"), py::arg("task_id"), py::arg("attempt") = 1)
      .def(
          "beat",
          [](const python_shim& self, const std::string& agent_id) {
            self.run([&](rrh::shim& node) {
              node.beat(agent_id);
              return rrh::ok();
            });
          },
          py::arg("agent_id"))
      .def("set_handler", &python_shim::set_handler, py::arg("kind"), py::arg("handler"))
      .def(
          "flush",
          [](const python_shim& self, std::uint64_t timeout_ms) {
            self.run([&](rrh::shim& node) { return node.flush(std::chrono::milliseconds(timeout_ms)); });
          },
          py::arg("timeout_ms"))
      .def("stats", [](const python_shim& self) {
        const auto counters = self.stats();
        py::dict result;
        result["events_sent"] = counters.events_sent;
        result["events_retransmitted"] = counters.events_retransmitted;
        result["events_acked"] = counters.events_acked;
        result["outbox_size"] = counters.outbox_size;
        result["outbox_rejections"] = counters.outbox_rejections;
        result["heartbeats_sent"] = counters.heartbeats_sent;
        result["commands_received"] = counters.commands_received;
        result["commands_duplicate"] = counters.commands_duplicate;
        result["commands_refused"] = counters.commands_refused;
        result["commands_malformed"] = counters.commands_malformed;
        result["commands_dropped"] = counters.commands_dropped;
        return result;
      });

  module.def("_close_all", &close_all_shims, "Closes every live shim (registered with atexit).");
  py::module_::import("atexit").attr("register")(module.attr("_close_all"));
}
