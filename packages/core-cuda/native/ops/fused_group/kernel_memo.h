// A group program's slot for what the emitter keeps of it between runs (its kernel, made at the
// first run: emitted_group.cpp), so that a replay skips the process-wide kernel cache's key and
// lock. A copy of a program starts with an empty slot (a copy's code may be changed), never the
// original's.
#pragma once
#include <memory>

namespace kx {

struct GroupKernelMemo;  // (emitted_group.cpp)
std::shared_ptr<GroupKernelMemo> make_group_kernel_memo();

class GroupKernelSlot {
 public:
  GroupKernelSlot() : memo_(make_group_kernel_memo()) {}
  GroupKernelSlot(const GroupKernelSlot&) : GroupKernelSlot() {}
  GroupKernelSlot& operator=(const GroupKernelSlot&) {
    memo_ = make_group_kernel_memo();
    return *this;
  }

  GroupKernelMemo& memo() const { return *memo_; }

 private:
  std::shared_ptr<GroupKernelMemo> memo_;
};

}  // namespace kx
