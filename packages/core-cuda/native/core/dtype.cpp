#include "kx/dtype.h"

#include "kx/error.h"

namespace kx {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Int32: return 4;
    case DType::UInt8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
  }
  return "?";
}

bool dtype_from_name(const std::string& name, DType* out) {
  for (int i = 0; i < kNumDTypes; ++i) {
    if (name == dtype_name((DType)i)) { *out = (DType)i; return true; }
  }
  return false;
}

const char* code_name(Code c) {
  switch (c) {
    case Code::Shape: return "E_SHAPE";
    case Code::DType: return "E_DTYPE";
    case Code::Device: return "E_DEVICE";
    case Code::Arg: return "E_ARG";
    case Code::Disposed: return "E_DISPOSED";
    case Code::OOM: return "E_OOM";
    case Code::NoCuda: return "E_NO_CUDA";
    case Code::IO: return "E_IO";
    case Code::Format: return "E_FORMAT";
    case Code::Internal: return "E_INTERNAL";
    case Code::NoMpi: return "E_NO_MPI";
    case Code::Dist: return "E_DIST";
  }
  return "E_INTERNAL";
}

}  // namespace kx
