#include "kx/registry.h"

#include <array>
#include <cmath>
#include <sstream>
#include <unordered_map>

#include "kx/error.h"

namespace kx {

namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (!item.empty()) parts.push_back(item);
  }
  return parts;
}

// "name:kind", "name?:kind" (optional) or "name...:kind" (variadic, stored as optional=false and
// the name ending in "...").
InputSpec parse_input(const std::string& text) {
  const size_t colon = text.find(':');
  InputSpec spec{text.substr(0, colon), InputKind::Any, false};
  const std::string kind = colon == std::string::npos ? "any" : text.substr(colon + 1);
  if (!spec.name.empty() && spec.name.back() == '?') {
    spec.optional = true;
    spec.name.pop_back();
  }
  spec.kind = kind == "float" ? InputKind::Float : kind == "int32" ? InputKind::Int32
            : kind == "uint8" ? InputKind::UInt8 : InputKind::Any;
  return spec;
}

bool is_variadic(const InputSpec& s) { return s.name.size() > 3 && s.name.compare(s.name.size() - 3, 3, "...") == 0; }

std::vector<OpDef> build_table() {
  std::vector<OpDef> table;
#define KX_OP(NAME, INPUTS, ATTRS, DOC)                                     \
  {                                                                         \
    OpDef def{#NAME, {}, split_list(ATTRS), DOC};                           \
    for (const auto& in : split_list(INPUTS)) def.inputs.push_back(parse_input(in)); \
    table.push_back(def);                                                   \
  }
#include "core/ops.def"
#undef KX_OP
  for (size_t i = 0; i < table.size(); ++i) {
    OpDef& def = table[i];
    def.index = i;
    def.variadic = def.inputs.size() == 1 && is_variadic(def.inputs[0]);
    def.required = def.inputs.size();
    while (def.required > 0 && def.inputs[def.required - 1].optional) --def.required;
  }
  return table;
}

std::unordered_map<std::string, Kernel>& kernels() {
  static std::unordered_map<std::string, Kernel> map;
  return map;
}

std::string kernel_key(const std::string& op, DeviceType device) {
  return op + (device == DeviceType::CPU ? "@cpu" : "@cuda");
}

const char* kind_name(InputKind k) {
  switch (k) {
    case InputKind::Float: return "a floating dtype";
    case InputKind::Int32: return "int32";
    case InputKind::UInt8: return "uint8";
    case InputKind::Any: return "any dtype";
  }
  return "?";
}

bool kind_accepts(InputKind k, DType t) {
  switch (k) {
    case InputKind::Float: return is_floating(t);
    case InputKind::Int32: return t == DType::Int32;
    case InputKind::UInt8: return t == DType::UInt8;
    case InputKind::Any: return true;
  }
  return false;
}

void check_inputs(const OpDef& def, const Inputs& inputs) {
  const bool variadic = def.variadic;
  if (!variadic) {
    const size_t required = def.required;  // trailing optional inputs may be left out
    KX_CHECK(inputs.size() >= required && inputs.size() <= def.inputs.size(), Arg, def.name, ": expected ",
             required == def.inputs.size() ? "" : (std::to_string(required) + " to "), def.inputs.size(),
             " inputs, got ", inputs.size());
  } else {
    KX_CHECK(!inputs.empty(), Arg, def.name, ": expected at least one input");
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputSpec& spec = def.inputs[variadic ? 0 : i];
    if (!inputs[i].defined()) {
      KX_CHECK(spec.optional, Arg, def.name, ": input '", spec.name, "' is required");
      continue;
    }
    KX_CHECK(kind_accepts(spec.kind, inputs[i].dtype), DType, def.name, ": input '", spec.name,
             "' must be ", kind_name(spec.kind), ", got ", dtype_name(inputs[i].dtype));
  }
}

Device common_device(const OpDef& def, const Inputs& inputs) {
  const Tensor* first = nullptr;
  for (const Tensor& t : inputs) {
    if (!t.defined()) continue;
    if (!first) { first = &t; continue; }
    KX_CHECK(t.device() == first->device(), Device, def.name, ": inputs on ", first->device().name(),
             " and ", t.device().name());
  }
  return first ? first->device() : Device{};
}

}  // namespace

const std::vector<OpDef>& op_table() {
  static const std::vector<OpDef> table = build_table();
  return table;
}

const OpDef* op_at(double index) {
  const std::vector<OpDef>& table = op_table();
  return index >= 0 && index < (double)table.size() && index == (double)(size_t)index ? &table[(size_t)index] : nullptr;
}

void register_kernel(const char* op, DeviceType device, Kernel kernel) { kernels()[kernel_key(op, device)] = kernel; }

Kernel kernel_for(const OpDef& def, DeviceType device) {
  // Kernels by op index and device type, gathered from the registrations on first use (every
  // kernel registers during static initialisation, before any op can run): an op indexes this
  // instead of building and hashing an "op@device" string per call.
  static const std::vector<std::array<Kernel, kNumDeviceTypes>> table = [] {
    std::vector<std::array<Kernel, kNumDeviceTypes>> t(op_table().size());
    for (const OpDef& d : op_table()) {
      for (DeviceType type : {DeviceType::CPU, DeviceType::CUDA}) {
        auto it = kernels().find(kernel_key(d.name, type));
        t[d.index][(size_t)type] = it == kernels().end() ? nullptr : it->second;
      }
    }
    return t;
  }();
  return table[def.index][(size_t)device];
}

std::vector<Tensor> run(const OpDef& def, const Inputs& inputs, const Attrs& attrs) {
  check_inputs(def, inputs);
  const Device device = common_device(def, inputs);
  Kernel kernel = kernel_for(def, device.type);
  KX_CHECK(kernel, Device, def.name, ": no kernel for ", device.type == DeviceType::CPU ? "cpu" : "cuda",
           " in this build");
  if (inputs.size() < def.inputs.size() && !def.variadic) {
    Inputs all = inputs;  // kernels see every input of the table: the left-out ones undefined
    all.resize(def.inputs.size());
    return kernel(all, attrs);
  }
  return kernel(inputs, attrs);
}

// --- attribute access -------------------------------------------------------------------------

double Attrs::num(const std::string& name, double fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  if (auto* d = std::get_if<double>(&it->second)) return *d;
  if (auto* b = std::get_if<bool>(&it->second)) return *b ? 1.0 : 0.0;
  fail(Code::Arg, "attribute '", name, "' must be a number");
}

int64_t Attrs::int_(const std::string& name, int64_t fallback) const {
  const double v = num(name, (double)fallback);
  KX_CHECK(std::isfinite(v) && v == std::floor(v), Arg, "attribute '", name, "' must be an integer, got ", v);
  return (int64_t)v;
}

bool Attrs::flag(const std::string& name, bool fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  if (auto* b = std::get_if<bool>(&it->second)) return *b;
  if (auto* d = std::get_if<double>(&it->second)) return *d != 0;
  fail(Code::Arg, "attribute '", name, "' must be a boolean");
}

std::string Attrs::str(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  if (auto* s = std::get_if<std::string>(&it->second)) return *s;
  fail(Code::Arg, "attribute '", name, "' must be a string");
}

std::vector<int64_t> Attrs::ints(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) return {};
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (auto* d = std::get_if<double>(&it->second)) return {(int64_t)*d};
  fail(Code::Arg, "attribute '", name, "' must be a list of integers");
}

}  // namespace kx
