// The only N-API code: tensor handles, data in and out, run(op, inputs, attrs), compiled programs
// (programCreate, programRun), and what the build and the machine can do. Every native error becomes a JS Error carrying the same `.code`. It uses
// the core (kx/) and reaches the CPU and CUDA runtimes only through their facade, runtime/runtime.h.
#include <napi.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kx/error.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "kx/tensor.h"
#include "ops/fused_group/executor.h"
#include "ops/fused_group/group_device.h"
#include "ops/fused_group/group_eval.h"
#include "ops/fused_group/ptx_writer.h"
#include "collective/communicator.h"
#include "program/program.h"
#include "runtime/runtime.h"

namespace {

using kx::Code;

// Handles. A JS handle is a number, generation · 2^24 + slot, not a pointer: dispose empties the
// slot and bumps its generation, so a handle used after dispose is E_DISPOSED (never freed memory),
// and slots are reused. A number costs JS and N-API nothing to make or read, unlike an External
// object (about a third of an op's dispatch, measured), and needs no finalizer: tensors that JS
// drops without dispose are freed by the JS side's FinalizationRegistry (memory.ts). Generations
// run 1 .. 2^29 - 1 and then wrap, so that every handle is an integer a double holds exactly.
class HandleTable {
 public:
  double add(kx::Tensor t) {
    std::lock_guard<std::mutex> lock(mu_);
    uint32_t index;
    if (free_.empty()) {
      KX_CHECK(slots_.size() < kMaxSlots, OOM, "too many live tensors");
      index = (uint32_t)slots_.size();
      slots_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Slot& slot = slots_[index];
    slot.tensor = std::move(t);
    return encode(index, slot.generation);
  }

  // The live tensor of a handle (a copy: a reference count, safe to use after the lock is gone).
  kx::Tensor get(double handle, const char* what) {
    std::lock_guard<std::mutex> lock(mu_);
    const Slot* slot = find(handle);
    KX_CHECK(slot, Disposed, what, ": the tensor has been disposed");
    return slot->tensor;
  }

  // Drops the handle's tensor (a handle already disposed is left alone).
  void remove(double handle) {
    kx::Tensor dropped;  // released after the lock: freeing may take the allocators' locks
    std::lock_guard<std::mutex> lock(mu_);
    Slot* slot = find(handle);
    if (!slot) return;
    dropped = std::move(slot->tensor);
    slot->tensor = kx::Tensor{};
    slot->generation = slot->generation + 1 < kGenerations ? slot->generation + 1 : 1;
    free_.push_back(index_of(handle));
  }

 private:
  struct Slot {
    kx::Tensor tensor;
    uint32_t generation = 1;
  };
  static constexpr uint32_t kMaxSlots = 1u << 24, kGenerations = 1u << 29;
  static double encode(uint32_t index, uint32_t generation) { return (double)generation * kMaxSlots + index; }
  static uint32_t index_of(double h) { return (uint32_t)((uint64_t)h % kMaxSlots); }
  static uint32_t generation_of(double h) { return (uint32_t)((uint64_t)h / kMaxSlots); }
  Slot* find(double h) {
    if (!(h >= kMaxSlots && h < (double)kGenerations * kMaxSlots && h == (double)(uint64_t)h)) return nullptr;
    const uint32_t index = index_of(h);
    if (index >= slots_.size() || slots_[index].generation != generation_of(h) || !slots_[index].tensor.defined())
      return nullptr;
    return &slots_[index];
  }

  std::mutex mu_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

HandleTable& handles() {
  static HandleTable* table = new HandleTable();  // never destroyed: exit must not free device memory late
  return *table;
}

// What JS learns of each tensor a call returns, without building an object per tensor: the call
// writes [handle, dtype, device type (0 cpu, 1 cuda), device index, rank, dims...] per returned
// tensor, in order, into the Float64Array passed as its last argument, which JS reads back at once.
// run() also takes its input handles from the start of that array. (Passed
// with each call, not registered once: two copies of the package in one process each have theirs.)
struct InfoWriter {
  double* data;
  size_t length;
  size_t at = 0;
};

InfoWriter info_writer(const Napi::CallbackInfo& info, size_t index) {
  // One typed-array query (type, length and data together): this runs on every op.
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  const bool ok = info.Length() > index && info[index].IsTypedArray() &&
                  napi_get_typedarray_info(info.Env(), info[index], &type, &length, &data, nullptr, nullptr) == napi_ok;
  KX_CHECK(ok && type == napi_float64_array, Arg, "the last argument must be the tensor info Float64Array");
  return {static_cast<double*>(data), length};
}

// Gives t a handle and writes its record.
void wrap(kx::Tensor t, InfoWriter& w) {
  KX_CHECK(w.at + 5 + t.shape.size() <= w.length, Internal, "tensor info buffer too small for rank ", t.shape.size());
  double* rec = w.data + w.at;
  rec[1] = (double)t.dtype;
  rec[2] = t.device().type == kx::DeviceType::CPU ? 0.0 : 1.0;
  rec[3] = (double)t.device().index;
  rec[4] = (double)t.shape.size();
  for (size_t i = 0; i < t.shape.size(); ++i) rec[5 + i] = (double)t.shape[i];
  w.at += 5 + t.shape.size();
  rec[0] = handles().add(std::move(t));
}

Napi::Error js_error(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

// Runs body, turning C++ exceptions into JS exceptions with a code.
template <class F>
Napi::Value guarded(const Napi::CallbackInfo& info, F body) {
  Napi::Env env = info.Env();
  try {
    return body(env);
  } catch (const kx::Error& e) {
    js_error(env, kx::code_name(e.code), e.what()).ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    js_error(env, "E_OOM", "out of host memory").ThrowAsJavaScriptException();
  } catch (const Napi::Error& e) {
    throw;
  } catch (const std::exception& e) {
    js_error(env, "E_INTERNAL", e.what()).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

kx::Tensor tensor_of(const Napi::Value& v, const char* what) {
  KX_CHECK(v.IsNumber(), Arg, what, ": not a tensor handle");
  return handles().get(v.As<Napi::Number>().DoubleValue(), what);
}

kx::Device parse_device(const std::string& name) {
  if (name == "cpu") return {kx::DeviceType::CPU, 0};
  if (name == "cuda") return {kx::DeviceType::CUDA, 0};
  if (name.rfind("cuda:", 0) == 0) {
    const std::string idx = name.substr(5);
    // (at most 9 digits: std::stoi throws out_of_range past int, which would surface as E_INTERNAL)
    KX_CHECK(!idx.empty() && idx.size() <= 9 && idx.find_first_not_of("0123456789") == std::string::npos, Arg,
             "bad device '", name, "'");
    return {kx::DeviceType::CUDA, std::stoi(idx)};
  }
  kx::fail(Code::Arg, "unknown device '", name, "' (expected cpu, cuda or cuda:N)");
}

kx::DType parse_dtype(const Napi::Value& v) {
  kx::DType t;
  KX_CHECK(v.IsString() && kx::dtype_from_name(v.As<Napi::String>().Utf8Value(), &t), DType, "unknown dtype");
  return t;
}

kx::Shape parse_shape(const Napi::Value& v) {
  KX_CHECK(v.IsArray(), Arg, "shape must be an array of non-negative integers");
  Napi::Array arr = v.As<Napi::Array>();
  kx::Shape shape(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    KX_CHECK(d.IsNumber(), Arg, "shape must be an array of non-negative integers");
    const double x = d.As<Napi::Number>().DoubleValue();
    KX_CHECK(x >= 0 && x == (double)(int64_t)x && x < 9.0e15, Arg, "bad dimension ", x, " in shape");
    shape[i] = (int64_t)x;
  }
  return shape;
}

napi_typedarray_type array_type_for(kx::DType t) {
  switch (t) {
    case kx::DType::Float32: return napi_float32_array;
    case kx::DType::Float16:
    case kx::DType::BFloat16: return napi_uint16_array;
    case kx::DType::Int32: return napi_int32_array;
    case kx::DType::UInt8: return napi_uint8_array;
  }
  return napi_uint8_array;
}

const char* array_name_for(kx::DType t) {
  switch (array_type_for(t)) {
    case napi_float32_array: return "Float32Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    default: return "Uint8Array";
  }
}

// fromData(typedArray, shape, dtype, device, info): a tensor (its record in info) holding a copy of the data.
Napi::Value FromData(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 5, Arg, "fromData(data, shape, dtype, device, info)");
    InfoWriter w = info_writer(info, 4);
    const kx::Shape shape = parse_shape(info[1]);
    const kx::DType dtype = parse_dtype(info[2]);
    const kx::Device device = parse_device(info[3].ToString().Utf8Value());
    KX_CHECK(info[0].IsTypedArray(), Arg, "data must be a typed array");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    KX_CHECK(arr.TypedArrayType() == array_type_for(dtype), DType, dtype_name(dtype), " data must be a ",
             array_name_for(dtype));
    KX_CHECK((int64_t)arr.ElementLength() == kx::numel_of(shape), Shape, "data has ", arr.ElementLength(),
             " elements but shape ", kx::shape_str(shape), " needs ", kx::numel_of(shape));
    kx::Tensor t = kx::empty(shape, dtype, device);
    kx::runtime::copy_from_host(t, static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset());
    wrap(std::move(t), w);
    return env.Undefined();
  });
}

// zeros(shape, dtype, device, info): a zero-filled tensor, made on its device (no host staging).
Napi::Value Zeros(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 4, Arg, "zeros(shape, dtype, device, info)");
    InfoWriter w = info_writer(info, 3);
    const kx::Shape shape = parse_shape(info[0]);
    const kx::DType dtype = parse_dtype(info[1]);
    wrap(kx::zeros(shape, dtype, parse_device(info[2].ToString().Utf8Value())), w);
    return env.Undefined();
  });
}

// toData(handle) -> a new typed array holding a copy of the elements (from a CUDA tensor: once the
// work queued before on its device has finished).
Napi::Value ToData(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const kx::Tensor t = tensor_of(info[0], "toData");
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, t.nbytes());
    kx::runtime::copy_to_host(buf.Data(), t);
    napi_value arr;
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, array_type_for(t.dtype), (size_t)t.numel(), buf, 0, &arr),
                         Napi::Value());
    return Napi::Value(env, arr);
  });
}

// toDevice(handle, device, info): a copy of the tensor on another device.
Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 3, Arg, "toDevice(handle, device, info)");
    InfoWriter w = info_writer(info, 2);
    const kx::Tensor src = tensor_of(info[0], "to");
    const kx::Device device = parse_device(info[1].ToString().Utf8Value());
    kx::Tensor dst = kx::empty(src.shape, src.dtype, device);
    kx::runtime::copy(dst, src);
    wrap(std::move(dst), w);
    return env.Undefined();
  });
}

kx::AttrValue parse_attr(const std::string& name, const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    std::vector<int64_t> ints(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      Napi::Value e = arr.Get(i);
      KX_CHECK(e.IsNumber(), Arg, "attribute '", name, "' must hold integers");
      const double x = e.As<Napi::Number>().DoubleValue();
      KX_CHECK(x == (double)(int64_t)x, Arg, "attribute '", name, "' must hold integers, got ", x);
      ints[i] = (int64_t)x;
    }
    return ints;
  }
  kx::fail(Code::Arg, "attribute '", name, "' has an unsupported type");
}

// run(op: index in buildInfo().ops, n: input count, attrs: object, info) -> the number of outputs.
// The n input handles are info's first n numbers (0 for an absent optional input); the outputs'
// records replace them.
Napi::Value Run(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 4 && info[0].IsNumber() && info[1].IsNumber(), Arg, "run(op, n, attrs, info)");
    InfoWriter w = info_writer(info, 3);
    const double index = info[0].As<Napi::Number>().DoubleValue();
    const kx::OpDef* def = kx::op_at(index);
    KX_CHECK(def, Arg, "unknown op #", index);
    const double n = info[1].As<Napi::Number>().DoubleValue();
    KX_CHECK(n >= 0 && n <= (double)w.length && n == (double)(size_t)n, Arg, def->name, ": bad input count ", n);
    kx::Inputs inputs((size_t)n);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (w.data[i] != 0) inputs[i] = handles().get(w.data[i], def->name.c_str());
    }
    kx::Attrs attrs;
    if (info[2].IsObject()) {
      // Only the op's declared attributes are read, by name: listing the object's keys cost about a
      // microsecond a call. native.ts refuses undeclared ones before the call.
      Napi::Object obj = info[2].As<Napi::Object>();
      for (const std::string& name : def->attrs) {
        Napi::Value v = obj.Get(name);
        if (!v.IsUndefined() && !v.IsNull()) attrs.values[name] = parse_attr(name, v);
      }
    }
    std::vector<kx::Tensor> outs = kx::run(*def, inputs, attrs);
    for (kx::Tensor& t : outs) wrap(std::move(t), w);
    return Napi::Number::New(env, (double)outs.size());
  });
}

// ---- compiled programs (kx.compile) ----------------------------------------------------------

std::vector<int64_t> int_list(const Napi::Value& v, const char* what) {
  KX_CHECK(v.IsArray(), Arg, what, " must be an array of integers");
  const kx::AttrValue parsed = parse_attr(what, v);
  return std::get<std::vector<int64_t>>(parsed);
}

int32_t int_of(const Napi::Value& v, const char* what) {
  KX_CHECK(v.IsNumber(), Arg, what, " must be an integer");
  const double x = v.As<Napi::Number>().DoubleValue();
  KX_CHECK(x == (double)(int32_t)x, Arg, what, " must be a 32-bit integer, got ", x);
  return (int32_t)x;
}

// A fused group's reduction: {op: 'sum' | 'mean' | 'max', rows, shape}.
kx::GroupReduction parse_group_reduction(const Napi::Value& v) {
  KX_CHECK(v.IsObject(), Arg, "group reduce must be an object");
  Napi::Object o = v.As<Napi::Object>();
  const std::string op = o.Get("op").IsString() ? o.Get("op").As<Napi::String>().Utf8Value() : "";
  KX_CHECK(op == "sum" || op == "mean" || op == "max", Arg, "group reduce op must be sum, mean or max, got '", op, "'");
  kx::GroupReduction r;
  r.op = op == "max" ? kx::RedOp::Max : kx::RedOp::Sum;
  r.mean = op == "mean";
  KX_CHECK(o.Get("rows").IsNumber(), Arg, "group reduce rows must be a number");
  const double rows = o.Get("rows").As<Napi::Number>().DoubleValue();
  KX_CHECK(rows >= 0 && rows == (double)(int64_t)rows, Arg, "group reduce rows must be a non-negative integer, got ", rows);
  r.rows = (int64_t)rows;
  r.shape = parse_shape(o.Get("shape"));
  return r;
}

// A fused group as JS writes it: {code, inputs, outputs, shape, dtype, reduce?}, validated.
kx::GroupProgram parse_group(const Napi::Value& v) {
  KX_CHECK(v.IsObject(), Arg, "program step group must be an object");
  Napi::Object g = v.As<Napi::Object>();
  const bool reduces = g.Has("reduce") && !g.Get("reduce").IsUndefined();
  const kx::GroupReduction reduction = reduces ? parse_group_reduction(g.Get("reduce")) : kx::GroupReduction{};
  return kx::group_program(int_list(g.Get("code"), "group code"), int_of(g.Get("inputs"), "group inputs"),
                           int_list(g.Get("outputs"), "group outputs"), parse_shape(g.Get("shape")),
                           parse_dtype(g.Get("dtype")), reduces ? &reduction : nullptr);
}

// The attributes `op` declares, read from a JS object (absent ones left to the op's defaults).
kx::Attrs parse_op_attrs(const kx::OpDef& op, const Napi::Value& v) {
  kx::Attrs attrs;
  if (!v.IsObject()) return attrs;
  Napi::Object o = v.As<Napi::Object>();
  for (const std::string& name : op.attrs) {
    Napi::Value a = o.Get(name);
    if (!a.IsUndefined() && !a.IsNull()) attrs.values[name] = parse_attr(name, a);
  }
  return attrs;
}

// One step of a program spec: {op: index in buildInfo().ops, attrs?, inputs, outputs} or
// {group: {code, inputs, outputs, shape, dtype, reduce?}, inputs, outputs}.
kx::ProgramStep parse_step(const Napi::Object& o) {
  kx::ProgramStep step;
  for (int64_t id : int_list(o.Get("inputs"), "program step inputs")) step.inputs.push_back((int32_t)id);
  step.outputs = int_of(o.Get("outputs"), "program step outputs");
  if (o.Has("group")) {
    step.group = std::make_shared<const kx::GroupProgram>(parse_group(o.Get("group")));
    return step;
  }
  step.op = kx::op_at(o.Get("op").IsNumber() ? o.Get("op").As<Napi::Number>().DoubleValue() : -1.0);
  KX_CHECK(step.op, Arg, "program step: unknown op");
  step.attrs = parse_op_attrs(*step.op, o.Get("attrs"));
  return step;
}

// What a program's External holds: the program until programDispose (or the External's finalizer)
// frees it, so that a dropped program's constants (packed weights) go when JS says, not when V8
// collects the External.
struct ProgramSlot {
  std::unique_ptr<kx::Program> program;
};

// programCreate({inputs, constants: handles, steps, outputs}) -> the program, an External (made
// once per traced signature, so its cost does not matter; the program lives until programDispose
// or until JS drops it).
Napi::Value ProgramCreate(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 1 && info[0].IsObject(), Arg, "programCreate(spec)");
    Napi::Object spec = info[0].As<Napi::Object>();
    std::vector<kx::Tensor> constants;
    for (int64_t h : int_list(spec.Get("constants"), "program constants"))
      constants.push_back(handles().get((double)h, "program constant"));
    KX_CHECK(spec.Get("steps").IsArray(), Arg, "program steps must be an array");
    Napi::Array steps_in = spec.Get("steps").As<Napi::Array>();
    std::vector<kx::ProgramStep> steps;
    for (uint32_t i = 0; i < steps_in.Length(); ++i) {
      KX_CHECK(steps_in.Get(i).IsObject(), Arg, "program step ", i, " must be an object");
      steps.push_back(parse_step(steps_in.Get(i).As<Napi::Object>()));
    }
    std::vector<int32_t> outputs;
    for (int64_t id : int_list(spec.Get("outputs"), "program outputs")) outputs.push_back((int32_t)id);
    auto* slot = new ProgramSlot{std::make_unique<kx::Program>(int_of(spec.Get("inputs"), "program inputs"),
                                                              std::move(constants), std::move(steps), std::move(outputs))};
    return Napi::External<ProgramSlot>::New(env, slot, [](Napi::Env, ProgramSlot* p) { delete p; });
  });
}

// programRun(program, n, info, patches?, stepNs?) -> the number of outputs: the n input handles are
// info's first numbers, the outputs are written to info as run's; patches, [{step, attrs}], give op
// steps new attributes for this run; stepNs, a Float64Array of a slot per step, receives each
// step's wall time in nanoseconds.
Napi::Value ProgramRun(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() >= 3 && info.Length() <= 5 && info[0].IsExternal() && info[1].IsNumber(), Arg,
             "programRun(program, n, info, patches?, stepNs?)");
    InfoWriter w = info_writer(info, 2);
    const kx::Program* program = info[0].As<Napi::External<ProgramSlot>>().Data()->program.get();
    KX_CHECK(program != nullptr, Arg, "programRun: the program was disposed");
    const double n = info[1].As<Napi::Number>().DoubleValue();
    KX_CHECK(n >= 0 && n <= (double)w.length && n == (double)(size_t)n, Arg, "programRun: bad input count ", n);
    std::vector<kx::Tensor> inputs((size_t)n);
    for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = handles().get(w.data[i], "compiled function input");
    std::vector<kx::AttrPatch> patches;
    if (info.Length() >= 4 && !info[3].IsUndefined()) {
      KX_CHECK(info[3].IsArray(), Arg, "programRun: patches must be an array");
      Napi::Array list = info[3].As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); ++i) {
        KX_CHECK(list.Get(i).IsObject(), Arg, "programRun: patch ", i, " must be an object");
        Napi::Object p = list.Get(i).As<Napi::Object>();
        const int64_t step = int_of(p.Get("step"), "patch step");
        patches.push_back({step, parse_op_attrs(program->patchable_op(step), p.Get("attrs"))});
      }
    }
    double* step_ns = nullptr;
    if (info.Length() == 5 && !info[4].IsUndefined()) {
      KX_CHECK(info[4].IsTypedArray() && info[4].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array, Arg,
               "programRun: stepNs must be a Float64Array");
      Napi::Float64Array ns = info[4].As<Napi::Float64Array>();
      KX_CHECK(ns.ElementLength() >= program->steps(), Arg, "programRun: stepNs holds ", ns.ElementLength(),
               " slots for ", program->steps(), " steps");
      step_ns = ns.Data();
    }
    std::vector<kx::Tensor> outs = program->run(inputs, patches, step_ns);
    for (kx::Tensor& t : outs) wrap(std::move(t), w);
    return Napi::Number::New(env, (double)outs.size());
  });
}

// programDispose(program): frees the program and its constants now; a later run is E_ARG.
Napi::Value ProgramDispose(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 1 && info[0].IsExternal(), Arg, "programDispose(program)");
    info[0].As<Napi::External<ProgramSlot>>().Data()->program.reset();
    return env.Undefined();
  });
}

// fusionStats() -> {executor, emitted, interpreted, kernels, cuda}: the code the CPU's fused-group
// emitter writes ("avx512", "avx2", or "interp" for none), the groups each executor ran, the kernels
// emitted; cuda: {ptx, interpreted, kernels, loadFailures, lastFailure} of the CUDA executor.
Napi::Value FusionStatsOf(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const kx::FusionStats s = kx::fusion_stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("executor", kx::fusion_executor_name());
    o.Set("emitted", (double)s.emitted);
    o.Set("interpreted", (double)s.interpreted);
    o.Set("kernels", (double)s.kernels);
    const kx::FusionCudaStats c = kx::fusion_cuda_stats();
    Napi::Object cuda = Napi::Object::New(env);
    cuda.Set("ptx", (double)c.ptx);
    cuda.Set("interpreted", (double)c.interpreted);
    cuda.Set("kernels", (double)c.kernels);
    cuda.Set("loadFailures", (double)c.load_failures);
    cuda.Set("lastFailure", c.last_failure);
    o.Set("cuda", cuda);
    return o;
  });
}

// fusionInterpretReference(group, inputs) -> each output's values as a Float32Array: the group run
// on CPU tensors (handles) by the CUDA interpreter kernel's element code (ops/fused_group/
// group_eval.h), one element at a time. For tests.
Napi::Value FusionInterpretReference(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 2 && info[1].IsArray(), Arg, "fusionInterpretReference(group, inputs)");
    const kx::GroupProgram p = parse_group(info[0]);
    Napi::Array list = info[1].As<Napi::Array>();
    kx::Inputs in;
    for (uint32_t k = 0; k < list.Length(); ++k) in.push_back(tensor_of(list.Get(k), "fusionInterpretReference input"));
    const std::vector<kx::Tensor> outs = kx::group_reference(p, in);
    Napi::Array result = Napi::Array::New(env, outs.size());
    for (size_t k = 0; k < outs.size(); ++k) {
      const kx::Tensor& t = outs[k];
      Napi::Float32Array values = Napi::Float32Array::New(env, (size_t)t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) values[(size_t)i] = kx::element_as_float(t.raw(), t.dtype, i);
      result.Set((uint32_t)k, values);
    }
    return result;
  });
}

// fusionPtx(group, reads) -> the PTX text of a group (ops/fused_group/ptx_writer.h), or null where
// the writer does not support it; reads[k], how input k is read: 'float32', 'uint8', 'float32-row',
// 'uint8-row', 'scalar' or 'unused'. For tests (ptxas checks the text; the CUDA executor loads it natively).
Napi::Value FusionPtx(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 2 && info[1].IsArray(), Arg, "fusionPtx(group, reads)");
    const kx::GroupProgram p = parse_group(info[0]);
    static const std::pair<const char*, kx::PtxRead> names[] = {
        {"float32", kx::PtxRead::Float32}, {"uint8", kx::PtxRead::UInt8}, {"float32-row", kx::PtxRead::Float32Row},
        {"uint8-row", kx::PtxRead::UInt8Row}, {"scalar", kx::PtxRead::Scalar}, {"unused", kx::PtxRead::Unused}};
    Napi::Array list = info[1].As<Napi::Array>();
    std::vector<kx::PtxRead> reads;
    for (uint32_t k = 0; k < list.Length(); ++k) {
      const std::string name = list.Get(k).IsString() ? list.Get(k).As<Napi::String>().Utf8Value() : "";
      const auto* it = std::find_if(std::begin(names), std::end(names), [&](const auto& n) { return name == n.first; });
      KX_CHECK(it != std::end(names), Arg, "fusionPtx: read ", k, " must be float32, uint8, float32-row, uint8-row, "
               "scalar or unused, got '", name, "'");
      reads.push_back(it->second);
    }
    const std::optional<std::string> text = kx::group_ptx(p, reads);
    return text ? Napi::Value(Napi::String::New(env, *text)) : env.Null();
  });
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    if (info.Length() > 0 && info[0].IsNumber()) handles().remove(info[0].As<Napi::Number>().DoubleValue());
    return env.Undefined();
  });
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    const kx::MemoryStats s = kx::memory_stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("storages", (double)s.storages);
    o.Set("bytes", (double)s.bytes);
    o.Set("peakBytes", (double)s.peak_bytes);
    o.Set("cudaBytes", (double)s.cuda_bytes);
    o.Set("hostCachedBytes", (double)kx::runtime::host_cached_bytes());
    const kx::CudaMemoryStats c = kx::runtime::cuda_memory_stats();
    Napi::Object cuda = Napi::Object::New(env);
    cuda.Set("allocated", (double)c.allocated);
    cuda.Set("cached", (double)c.cached);
    cuda.Set("peak", (double)c.peak);
    cuda.Set("mallocCalls", (double)c.malloc_calls);
    cuda.Set("cacheHits", (double)c.cache_hits);
    o.Set("cuda", cuda);
    return o;
  });
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    o.Set("blas", kx::runtime::cpu_blas());
    // the vector runs' target, chosen at run time (kx/simd.h), and whether it converts float16 in hardware
    const std::string simd = kx::simd::target_name();
    o.Set("simd", simd);
    o.Set("f16c", Napi::Boolean::New(env, simd == "AVX2" || simd.rfind("AVX3", 0) == 0));
    const kx::runtime::CudaBuild cuda = kx::runtime::cuda_build();
    o.Set("cuda", Napi::Boolean::New(env, cuda.compiled));
    o.Set("cudaArchs", cuda.archs);
    o.Set("cudaRuntimeVersion", cuda.runtime_version);
    o.Set("cublasLt", cuda.blas_library);
    o.Set("threads", kx::runtime::num_threads());
    o.Set("compiler", __VERSION__);
    Napi::Array ops = Napi::Array::New(env);
    uint32_t i = 0;
    for (const kx::OpDef& d : kx::op_table()) {
      Napi::Object op = Napi::Object::New(env);
      op.Set("name", d.name);
      op.Set("cpu", Napi::Boolean::New(env, kx::kernel_for(d, kx::DeviceType::CPU) != nullptr));
      op.Set("cuda", Napi::Boolean::New(env, kx::kernel_for(d, kx::DeviceType::CUDA) != nullptr));
      op.Set("doc", d.doc);
      Napi::Array attr_names = Napi::Array::New(env, d.attrs.size());
      for (size_t k = 0; k < d.attrs.size(); ++k) attr_names.Set((uint32_t)k, d.attrs[k]);
      op.Set("attrs", attr_names);
      ops.Set(i++, op);
    }
    o.Set("ops", ops);
    return o;
  });
}

Napi::Value CudaDevices(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const kx::CudaDeviceInfo& d : kx::runtime::cuda_devices()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", d.index);
      o.Set("name", d.name);
      o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
      o.Set("totalMemory", (double)d.total_memory);
      o.Set("multiprocessors", d.multiprocessors);
      out.Set(i++, o);
    }
    return out;
  });
}

Napi::Value CudaUnavailableReason(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::String::New(env, kx::runtime::cuda_unavailable_reason()); });
}

// releaseHostCache() -> bytes returned to the system; setHostCacheLimit(bytes) trims to the new limit.
// What V8 is told about native memory: the TS memory module reports the tensors no tidy scope
// will free (memory.ts says why), so that dropped ones get collected.
Napi::Value AdjustExternalMemory(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 1 && info[0].IsNumber(), Arg, "adjustExternalMemory(bytes)");
    return Napi::Number::New(env, (double)Napi::MemoryManagement::AdjustExternalMemory(env, info[0].As<Napi::Number>().Int64Value()));
  });
}

Napi::Value ReleaseHostCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, (double)kx::runtime::release_host_cache()); });
}

// releaseCudaCache() -> bytes of cached device blocks given back with cudaFree.
Napi::Value ReleaseCudaCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, (double)kx::runtime::release_cuda_cache()); });
}

// cudaSynchronize(): waits for the work queued on every device; a failed kernel's error is raised here.
Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    kx::runtime::synchronize();
    return env.Undefined();
  });
}

Napi::Value SetHostCacheLimit(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 1 && info[0].IsNumber(), Arg, "setHostCacheLimit(bytes)");
    const double bytes = info[0].As<Napi::Number>().DoubleValue();
    KX_CHECK(bytes >= 0 && bytes < 9.0e15 && bytes == (double)(int64_t)bytes, Arg, "host cache limit must be a whole number of bytes >= 0, got ", bytes);
    kx::runtime::set_host_cache_limit((int64_t)bytes);
    return Napi::Number::New(env, (double)kx::runtime::host_cache_limit());
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 1 && info[0].IsNumber(), Arg, "setNumThreads(n)");
    const int n = info[0].As<Napi::Number>().Int32Value();
    KX_CHECK(n >= 1 && n <= 1024, Arg, "thread count must be in 1..1024, got ", n);
    kx::runtime::set_num_threads(n);
    return env.Undefined();
  });
}

// kx.dist: the collectives of native/collective/. Each start returns a ticket that distWait redeems.
Napi::Value DistInit(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 1 && info[0].IsBoolean(), Arg, "distInit(withMpi)");
    const kx::dist::World w = kx::dist::init(info[0].As<Napi::Boolean>().Value());
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", Napi::Number::New(env, w.rank));
    o.Set("size", Napi::Number::New(env, w.size));
    o.Set("library", Napi::String::New(env, w.library));
    return o;
  });
}

std::vector<kx::Tensor> tensor_list(const Napi::Value& v, const char* what) {
  KX_CHECK(v.IsArray(), Arg, what, ": expected an array of tensor handles");
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<kx::Tensor> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(tensor_of(arr.Get(i), what));
  return out;
}

size_t bucket_bytes_of(const Napi::Value& v) {
  KX_CHECK(v.IsNumber(), Arg, "bucket size: expected a number of bytes");
  const double b = v.As<Napi::Number>().DoubleValue();
  KX_CHECK(b >= 1 && b <= 1e12 && b == (double)(int64_t)b, Arg, "bucket size must be a whole number of bytes in 1..1e12, got ", b);
  return (size_t)b;
}

Napi::Value DistAllReduce(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 3 && info[1].IsString(), Arg, "distAllReduce(handles, op, bucketBytes)");
    const std::string op = info[1].As<Napi::String>().Utf8Value();
    KX_CHECK(op == "sum" || op == "mean", Arg, "allReduce: op must be 'sum' or 'mean', got '", op, "'");
    const uint64_t ticket = kx::dist::start_all_reduce(tensor_list(info[0], "allReduce"), op == "sum" ? kx::dist::ReduceOp::Sum : kx::dist::ReduceOp::Mean,
                                                       bucket_bytes_of(info[2]));
    return Napi::Number::New(env, (double)ticket);
  });
}

Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 3 && info[1].IsNumber(), Arg, "distBroadcast(handles, root, bucketBytes)");
    const uint64_t ticket = kx::dist::start_broadcast(tensor_list(info[0], "broadcast"), info[1].As<Napi::Number>().Int32Value(), bucket_bytes_of(info[2]));
    return Napi::Number::New(env, (double)ticket);
  });
}

Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, (double)kx::dist::start_barrier()); });
}

Napi::Value DistWait(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    KX_CHECK(info.Length() == 2 && info[0].IsNumber() && info[1].IsNumber(), Arg, "distWait(ticket, timeoutMs)");
    const kx::dist::Timing t = kx::dist::wait((uint64_t)info[0].As<Napi::Number>().DoubleValue(), info[1].As<Napi::Number>().DoubleValue());
    return Napi::Number::New(env, t.busy_ms);
  });
}

Napi::Value DistFinalize(const Napi::CallbackInfo& info) {
  return guarded(info, [&](Napi::Env env) -> Napi::Value {
    kx::dist::finalize();
    return env.Undefined();
  });
}

// Called once per JS thread that loads the addon (the main thread, each worker thread); the native
// state (handles, allocators, registry, thread pool) is the process's, made once.
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag simd_once;  // KEXUE_SIMD, read once per process; a bad value fails every load
  try {
    std::call_once(simd_once, kx::simd::cap_target_from_env);
  } catch (const kx::Error& e) {
    throw js_error(env, kx::code_name(e.code), e.what());
  }
  exports.Set("fromData", Napi::Function::New(env, FromData));
  exports.Set("zeros", Napi::Function::New(env, Zeros));
  exports.Set("toData", Napi::Function::New(env, ToData));
  exports.Set("toDevice", Napi::Function::New(env, ToDevice));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("programCreate", Napi::Function::New(env, ProgramCreate));
  exports.Set("programRun", Napi::Function::New(env, ProgramRun));
  exports.Set("programDispose", Napi::Function::New(env, ProgramDispose));
  exports.Set("fusionStats", Napi::Function::New(env, FusionStatsOf));
  exports.Set("fusionPtx", Napi::Function::New(env, FusionPtx));
  exports.Set("fusionInterpretReference", Napi::Function::New(env, FusionInterpretReference));
  Napi::Array dtype_names = Napi::Array::New(env, kx::kNumDTypes);
  for (int i = 0; i < kx::kNumDTypes; ++i) dtype_names.Set((uint32_t)i, kx::dtype_name((kx::DType)i));
  exports.Set("dtypeNames", dtype_names);
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  exports.Set("cudaDevices", Napi::Function::New(env, CudaDevices));
  exports.Set("cudaUnavailableReason", Napi::Function::New(env, CudaUnavailableReason));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("adjustExternalMemory", Napi::Function::New(env, AdjustExternalMemory));
  exports.Set("releaseHostCache", Napi::Function::New(env, ReleaseHostCache));
  exports.Set("setHostCacheLimit", Napi::Function::New(env, SetHostCacheLimit));
  exports.Set("releaseCudaCache", Napi::Function::New(env, ReleaseCudaCache));
  exports.Set("cudaSynchronize", Napi::Function::New(env, CudaSynchronize));
  exports.Set("distInit", Napi::Function::New(env, DistInit));
  exports.Set("distAllReduce", Napi::Function::New(env, DistAllReduce));
  exports.Set("distBroadcast", Napi::Function::New(env, DistBroadcast));
  exports.Set("distBarrier", Napi::Function::New(env, DistBarrier));
  exports.Set("distWait", Napi::Function::New(env, DistWait));
  exports.Set("distFinalize", Napi::Function::New(env, DistFinalize));
  return exports;
}

}  // namespace

NODE_API_MODULE(kexue_core, Init)
