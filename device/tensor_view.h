// tensor_view.h: a non-owning view of a device tensor: pointer, dtype, shape and strides (in
// elements, row-major by default). Kernel argument structs (kernel_args.h) are made of views,
// so every kernel argument carries its dtype and shape and can be checked, converted (bf16 on
// the CPU) and, on sim-gpu, translated in one generic place.
//
// Invariants: rank <= kMaxRank; dims past `rank` are 1 with stride 0; a view with a zero dim
// is empty (touches no memory). The data pointer is a device pointer of the backend the view
// is handed to (host pointers only where the backend's memory is host memory).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "device/dtype.h"

namespace rw::device {

constexpr int kMaxRank = 4;

template <class Pointer>
struct BasicTensorView {
  Pointer data = nullptr;
  DType dtype = DType::f32;
  int rank = 0;
  int64_t shape[kMaxRank] = {1, 1, 1, 1};
  int64_t stride[kMaxRank] = {0, 0, 0, 0};

  BasicTensorView() = default;
  // A view with a writable pointer converts to one with a read-only pointer.
  template <class Other, class = std::enable_if_t<std::is_convertible<Other, Pointer>::value &&
                                                  !std::is_same<Other, Pointer>::value>>
  BasicTensorView(const BasicTensorView<Other>& o) : data(o.data), dtype(o.dtype), rank(o.rank) {
    for (int i = 0; i < kMaxRank; ++i) shape[i] = o.shape[i], stride[i] = o.stride[i];
  }

  int64_t n_elements() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  bool empty() const { return n_elements() == 0; }
  bool is_contiguous() const {
    int64_t expect = 1;
    for (int i = rank - 1; i >= 0; --i) {
      if (shape[i] != 1 && stride[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
  // Bytes from data to one past the last element (0 for an empty view): the extent a kernel
  // may touch, checked against the allocation by strict backends.
  std::size_t extent_bytes() const {
    if (empty()) return 0;
    int64_t last = 0;
    for (int i = 0; i < rank; ++i) last += (shape[i] - 1) * stride[i];
    return static_cast<std::size_t>(last + 1) * dtype_size(dtype);
  }
  template <class T>
  auto as() const {
    using Out = std::conditional_t<std::is_const<std::remove_pointer_t<Pointer>>::value, const T*, T*>;
    return static_cast<Out>(data);
  }
};

using TensorView = BasicTensorView<void*>;
using ConstTensorView = BasicTensorView<const void*>;

// A contiguous row-major view of `shape` at data (any dtype).
template <class Pointer>
BasicTensorView<Pointer> make_view(Pointer data, DType dtype, std::initializer_list<int64_t> shape) {
  BasicTensorView<Pointer> v;
  v.data = data;
  v.dtype = dtype;
  v.rank = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) v.shape[i++] = d;
  int64_t s = 1;
  for (int j = v.rank - 1; j >= 0; --j) {
    v.stride[j] = s;
    s *= v.shape[j];
  }
  return v;
}

// Typed builders: view(p, {rows, cols}) for float, bf16_t, double, int32_t, uint8_t pointers.
template <class T>
TensorView view(T* data, std::initializer_list<int64_t> shape) {
  return make_view<void*>(data, dtype_of<std::remove_cv_t<T>>::value, shape);
}
template <class T>
ConstTensorView view(const T* data, std::initializer_list<int64_t> shape) {
  return make_view<const void*>(data, dtype_of<T>::value, shape);
}

// A row-major matrix with leading dimension ld (ld >= cols): row i starts at data + i * ld.
template <class T>
TensorView matrix_view(T* data, int64_t rows, int64_t cols, int64_t ld) {
  TensorView v = view(data, {rows, cols});
  v.stride[0] = ld;
  return v;
}
template <class T>
ConstTensorView matrix_view(const T* data, int64_t rows, int64_t cols, int64_t ld) {
  ConstTensorView v = view(data, {rows, cols});
  v.stride[0] = ld;
  return v;
}

// One device scalar (a reduction's destination).
template <class T>
TensorView scalar_view(T* data) {
  return view(data, {1});
}

}  // namespace rw::device
