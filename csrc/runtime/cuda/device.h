// The CUDA device: discovery, error checking and device memory. Compiled only with the CUDA
// backend (SLM_WITH_CUDA); uses the runtime API only, linked statically, so a machine without a
// driver loads the module and simply reports no device.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace slm::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count();

// Why device_count() is 0 (the runtime's message), or "" when devices exist.
std::string unavailable_reason();

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;
  int multiprocessors = 0;
  int64_t memory_bytes = 0;
  int64_t l2_bytes = 0;
};
DeviceInfo device_info(int device);

// Throws the slmcore error that matches a cudaError_t (as int): OutOfMemoryError for allocation
// failures, DeviceUnavailableError for a missing driver or device, slm::Error otherwise.
void check(int err, const char* what);

// Selects `device` for the calling thread; DeviceUnavailableError if it does not exist.
void set_device(int device);

// Waits for all work on the current device; throws (check) if any of it failed.
void synchronize(const char* what);

// Owns one cudaMalloc allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t size() const { return bytes_; }

  void upload(const void* host, size_t bytes, size_t offset = 0);
  void download(void* host, size_t bytes, size_t offset = 0) const;

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace slm::cuda
