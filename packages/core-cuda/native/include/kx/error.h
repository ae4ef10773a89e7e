// Errors thrown by native code. The N-API layer turns each into a JS error with the same `.code`,
// and the TypeScript side into the matching KexueError subclass.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace kx {

enum class Code { Shape, DType, Device, Arg, Disposed, OOM, NoCuda, IO, Format, Internal, NoMpi, Dist };
const char* code_name(Code c);

struct Error : std::runtime_error {
  Code code;
  Error(Code c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

template <class... Parts>
[[noreturn]] void fail(Code c, const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(c, os.str());
}

}  // namespace kx

#define KX_CHECK(cond, code, ...) \
  do { if (!(cond)) ::kx::fail(::kx::Code::code, __VA_ARGS__); } while (0)
