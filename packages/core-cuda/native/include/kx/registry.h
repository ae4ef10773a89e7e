// The op registry: every op is named once in core/ops.def with its inputs and attributes; kernels
// register themselves per device, and run() looks them up by (op, device).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "kx/tensor.h"

namespace kx {

// Attribute values as they come from JS: numbers, booleans, strings, integer lists.
using AttrValue = std::variant<double, bool, std::string, std::vector<int64_t>>;

class Attrs {
 public:
  std::map<std::string, AttrValue> values;
  bool has(const std::string& name) const { return values.count(name) != 0; }
  double num(const std::string& name, double fallback) const;
  int64_t int_(const std::string& name, int64_t fallback) const;
  bool flag(const std::string& name, bool fallback) const;
  std::string str(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> ints(const std::string& name) const;  // empty when absent
};

// Inputs in the order the table names them; an absent optional input is an undefined Tensor.
using Inputs = std::vector<Tensor>;
using Kernel = std::vector<Tensor> (*)(const Inputs& in, const Attrs& attrs);

enum class InputKind { Float, Int32, UInt8, Any };
struct InputSpec {
  std::string name;
  InputKind kind;
  bool optional;
};
struct OpDef {
  std::string name;
  std::vector<InputSpec> inputs;
  std::vector<std::string> attrs;
  std::string doc;
  size_t index = 0;     // position in op_table()
  bool variadic = false;  // one input spec "name...", repeated
  size_t required = 0;  // inputs before the trailing optional ones
};

const std::vector<OpDef>& op_table();
// The op at a position of op_table() (how JS names ops per call: cheaper than by string), or null.
const OpDef* op_at(double index);
void register_kernel(const char* op, DeviceType device, Kernel kernel);
// The op's kernel for a device type, or null where this build has none.
Kernel kernel_for(const OpDef& def, DeviceType device);

// Checks the inputs against the op's table entry, finds the kernel for their device, runs it. The
// attributes are the op's own (the N-API layer reads only declared names; native.ts refuses others).
std::vector<Tensor> run(const OpDef& def, const Inputs& inputs, const Attrs& attrs);

struct KernelRegistrar {
  KernelRegistrar(const char* op, DeviceType device, Kernel kernel) { register_kernel(op, device, kernel); }
};

}  // namespace kx

#define KX_REGISTER_KERNEL(OP, DEVICE, FN) \
  static ::kx::KernelRegistrar kx_registrar_##OP##_##DEVICE(#OP, ::kx::DeviceType::DEVICE, FN)
