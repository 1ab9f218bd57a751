#include "runtime/cuda/device.h"

#include <cuda_runtime.h>

#include <utility>

#include "runtime/error.h"

namespace slm::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cudaGetErrorString(e);
  }
  return n > 0 ? "" : "no CUDA device found";
}

void check(int err, const char* what) {
  if (err == cudaSuccess) return;
  const auto e = static_cast<cudaError_t>(err);
  const std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  cudaGetLastError();
  switch (e) {
    case cudaErrorMemoryAllocation:
      throw OutOfMemoryError(msg);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
      throw DeviceUnavailableError(msg);
    default:
      throw Error(msg);
  }
}

void set_device(int device) {
  const int n = device_count();
  if (device < 0 || device >= n) {
    throw DeviceUnavailableError("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) +
                                 " found" + (n == 0 ? ": " + unavailable_reason() : std::string()) + ")");
  }
  check(cudaSetDevice(device), "cudaSetDevice");
}

void synchronize(const char* what) {
  check(cudaGetLastError(), what);
  check(cudaDeviceSynchronize(), what);
}

DeviceInfo device_info(int device) {
  set_device(device);
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return DeviceInfo{p.name, p.major, p.minor, p.multiProcessorCount, int64_t(p.totalGlobalMem), int64_t(p.l2CacheSize)};
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  if (offset + bytes > bytes_) throw InvalidArgumentError("DeviceBuffer::upload past the end of the buffer");
  if (bytes) check(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  if (offset + bytes > bytes_) throw InvalidArgumentError("DeviceBuffer::download past the end of the buffer");
  if (bytes) check(cudaMemcpy(host, static_cast<char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}

}  // namespace slm::cuda
