// The PTX writer (ptx_writer.h). Every operation is one IEEE instruction with an explicit rounding
// (add.rn, mul.rn: ptxas does not contract them into FMAs; div.rn and sqrt.rn are the correctly
// rounded forms; no .ftz, so subnormals survive as on the CPU), the multiply-adds one fma.rn, so a
// group gives the interpreter's bits. Program register r is %v<r>; scratch: %t (f32), %q (pred),
// %a (the address), %b (a loaded byte), %e (an element index).
#include "ops/fused_group/ptx_writer.h"

#include <cstdio>
#include <cstring>
#include <sstream>

namespace kx {
namespace {

bool is_row(PtxRead r) { return r == PtxRead::Float32Row || r == PtxRead::UInt8Row; }
bool is_byte(PtxRead r) { return r == PtxRead::UInt8 || r == PtxRead::UInt8Row; }

// A float32 immediate as PTX writes one exactly: 0f and its bits in hex.
std::string imm(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  char s[16];
  std::snprintf(s, sizeof s, "0f%08X", bits);
  return s;
}

class Writer {
 public:
  Writer(const GroupProgram& p, const std::vector<PtxRead>& reads) : p_(p), reads_(reads) {}

  std::string text() {
    header();
    for (size_t at = 0; at < p_.code.size(); ++at) instruction(p_.code[at]);
    o_ << "\tadd.u64 %i, %i, %stride;\n"
          "\tsetp.lt.u64 %q, %i, %n;\n"
          "\t@%q bra LOOP;\n"
          "DONE:\n"
          "\tret;\n"
          "}\n";
    return o_.str();
  }

 private:
  void header() {
    const std::string e = kPtxGroupEntry;
    o_ << "// a kexue fused group: " << p_.code.size() << " instructions, " << p_.inputs << " inputs, "
       << p_.outputs.size() << " outputs\n"
       << ".version 8.0\n.target sm_80\n.address_size 64\n\n"
       << ".visible .entry " << e << "(\n\t.param .u64 " << e << "_n";
    for (int k = 0; k < p_.inputs; ++k) {
      const PtxRead r = reads_[(size_t)k];
      if (r == PtxRead::Scalar) o_ << ",\n\t.param .f32 " << e << "_in" << k;
      else if (r != PtxRead::Unused) o_ << ",\n\t.param .u64 " << e << "_in" << k;
      if (is_row(r)) o_ << ",\n\t.param .u64 " << e << "_period" << k;
    }
    for (size_t k = 0; k < p_.outputs.size(); ++k) o_ << ",\n\t.param .u64 " << e << "_out" << k;
    o_ << ")\n{\n"
       << "\t.reg .pred %q;\n\t.reg .b32 %b, %r<4>;\n\t.reg .f32 %t;\n"
       << "\t.reg .f32 %v<" << p_.registers << ">;\n"
       << "\t.reg .b64 %n, %i, %stride, %a, %e, %w;\n"
       << "\t.reg .b64 %in<" << kMaxGroupInputs << ">, %period<" << kMaxGroupInputs << ">, %out<" << kMaxGroupOutputs
       << ">;\n\t.reg .f32 %s<" << kMaxGroupInputs << ">;\n"
       << "\tld.param.u64 %n, [" << e << "_n];\n";
    for (int k = 0; k < p_.inputs; ++k) {
      const PtxRead r = reads_[(size_t)k];
      if (r == PtxRead::Scalar) {
        o_ << "\tld.param.f32 %s" << k << ", [" << e << "_in" << k << "];\n";
      } else if (r != PtxRead::Unused) {
        o_ << "\tld.param.u64 %w, [" << e << "_in" << k << "];\n\tcvta.to.global.u64 %in" << k << ", %w;\n";
      }
      if (is_row(r)) o_ << "\tld.param.u64 %period" << k << ", [" << e << "_period" << k << "];\n";
    }
    for (size_t k = 0; k < p_.outputs.size(); ++k)
      o_ << "\tld.param.u64 %w, [" << e << "_out" << k << "];\n\tcvta.to.global.u64 %out" << k << ", %w;\n";
    // i = ctaid·ntid + tid, stride = ntid·nctaid: every thread of the grid steps over the range
    o_ << "\tmov.u32 %r0, %ctaid.x;\n\tmov.u32 %r1, %ntid.x;\n\tmov.u32 %r2, %tid.x;\n\tmov.u32 %r3, %nctaid.x;\n"
          "\tmul.wide.u32 %i, %r0, %r1;\n\tcvt.u64.u32 %w, %r2;\n\tadd.u64 %i, %i, %w;\n"
          "\tmul.wide.u32 %stride, %r1, %r3;\n"
          "\tsetp.ge.u64 %q, %i, %n;\n\t@%q bra DONE;\n"
          "LOOP:\n";
  }

  // Operand r: %v<r>, or the instruction's immediate when r < 0.
  std::string operand(int r, float value) const { return r < 0 ? imm(value) : "%v" + std::to_string(r); }

  void load(const std::string& d, int k) {
    const PtxRead r = reads_[(size_t)k];
    if (r == PtxRead::Scalar) {
      o_ << "\tmov.f32 " << d << ", %s" << k << ";\n";
      return;
    }
    const char* index = "%i";
    if (is_row(r)) {
      o_ << "\trem.u64 %e, %i, %period" << k << ";\n";
      index = "%e";
    }
    if (is_byte(r)) {  // a mask: its byte as a float32 0 or 1 (any nonzero byte its value)
      o_ << "\tadd.u64 %a, %in" << k << ", " << index << ";\n\tld.global.u8 %b, [%a];\n\tcvt.rn.f32.u32 " << d
         << ", %b;\n";
      return;
    }
    o_ << "\tshl.b64 %a, " << index << ", 2;\n\tadd.u64 %a, %in" << k << ", %a;\n\tld.global.f32 " << d << ", [%a];\n";
  }

  void instruction(const GroupInstr& ins) {
    const std::string d = "%v" + std::to_string(ins.dst);
    const std::string a = operand(ins.a, ins.imm), b = operand(ins.b, ins.imm), c = operand(ins.c, ins.imm);
    switch (ins.op) {
      case GroupOp::Load: load(d, ins.a); break;
      case GroupOp::Imm: o_ << "\tmov.f32 " << d << ", " << imm(ins.imm) << ";\n"; break;
      case GroupOp::Add: o_ << "\tadd.rn.f32 " << d << ", " << a << ", " << b << ";\n"; break;
      case GroupOp::Sub: o_ << "\tsub.rn.f32 " << d << ", " << a << ", " << b << ";\n"; break;
      case GroupOp::Mul: o_ << "\tmul.rn.f32 " << d << ", " << a << ", " << b << ";\n"; break;
      case GroupOp::Div: o_ << "\tdiv.rn.f32 " << d << ", " << a << ", " << b << ";\n"; break;
      case GroupOp::MulAdd: o_ << "\tfma.rn.f32 " << d << ", " << a << ", " << b << ", " << c << ";\n"; break;
      case GroupOp::MulSub:  // a·b − c = fma(a, b, −c): negation is exact
        o_ << "\tneg.f32 %t, " << c << ";\n\tfma.rn.f32 " << d << ", " << a << ", " << b << ", %t;\n";
        break;
      case GroupOp::NegMulAdd:  // c − a·b = fma(−a, b, c)
        o_ << "\tneg.f32 %t, " << a << ";\n\tfma.rn.f32 " << d << ", %t, " << b << ", " << c << ";\n";
        break;
      case GroupOp::Where:  // a != 0, ordered (NaN selects c) as the interpreter's
        o_ << "\tsetp.ne.f32 %q, " << a << ", 0f00000000;\n\tselp.f32 " << d << ", " << b << ", " << c << ", %q;\n";
        break;
      case GroupOp::Unary: unary(ins.fn, d, a); break;
      case GroupOp::UnaryGrad: case GroupOp::Reduce: break;  // never written (generated_instr())
    }
    if (ins.output >= 0)
      o_ << "\tshl.b64 %a, %i, 2;\n\tadd.u64 %a, %out" << ins.output << ", %a;\n\tst.global.f32 [%a], " << d << ";\n";
  }

  void unary(UnaryFn fn, const std::string& d, const std::string& a) {
    switch (fn) {
      case UnaryFn::Neg: o_ << "\tneg.f32 " << d << ", " << a << ";\n"; return;
      case UnaryFn::Sqrt: o_ << "\tsqrt.rn.f32 " << d << ", " << a << ";\n"; return;
      case UnaryFn::Rsqrt:  // 1 / sqrt(x), two correctly rounded steps as eager's (rsqrt.approx is not)
        o_ << "\tsqrt.rn.f32 %t, " << a << ";\n\tdiv.rn.f32 " << d << ", 0f3F800000, %t;\n";
        return;
      case UnaryFn::Relu:  // x < 0 ? 0 : x, so NaN and −0 pass through as the CPU's
        o_ << "\tsetp.lt.f32 %q, " << a << ", 0f00000000;\n\tselp.f32 " << d << ", 0f00000000, " << a << ", %q;\n";
        return;
      default: return;
    }
  }

  const GroupProgram& p_;
  const std::vector<PtxRead>& reads_;
  std::ostringstream o_;
};

}  // namespace

std::optional<std::string> group_ptx(const GroupProgram& p, const std::vector<PtxRead>& reads) {
  KX_CHECK((int64_t)reads.size() == p.inputs, Arg, "fused group PTX: ", reads.size(), " reads for ", p.inputs,
           " inputs");
  if (p.reduce_at >= 0 || p.dtype != DType::Float32) return std::nullopt;
  for (const GroupInstr& ins : p.code) {
    if (!generated_instr(ins)) return std::nullopt;
    if (ins.op == GroupOp::Load && reads[(size_t)ins.a] == PtxRead::Unused) return std::nullopt;
  }
  return Writer(p, reads).text();
}

}  // namespace kx
