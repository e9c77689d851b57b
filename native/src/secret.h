// Password and key bytes inside the addon.
//
// A std::string or std::vector holding a secret leaves copies behind: every copy of a lambda
// that captures one (std::function copies its target), the inline buffer of a moved-from
// short string, a vector's old buffer after it grows. None of them is wiped. SecretBytes is
// one heap buffer that is never copied (shared by pointer), NUL-terminated for libkrb5, and
// wiped with explicit_bzero before it is freed, however the job ends.
#pragma once

#include <cstddef>
#include <memory>

namespace saslgate {

class SecretBytes {
 public:
  // Copies `size` bytes from `data` (the caller wipes its own copy).
  SecretBytes(const void* data, size_t size);
  ~SecretBytes();
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  const unsigned char* data() const { return bytes_; }
  unsigned char* mutable_data() { return bytes_; }
  // NUL-terminated view (for krb5_init_creds_set_password); the bytes hold no NUL.
  const char* c_str() const { return reinterpret_cast<const char*>(bytes_); }
  size_t size() const { return size_; }
  // Zeroes the bytes now (the buffer stays allocated until destruction).
  void Wipe();

 private:
  unsigned char* bytes_ = nullptr;
  size_t size_ = 0;
};

// What a queued job captures: copying the job's closure copies this pointer, not the bytes.
using SharedSecret = std::shared_ptr<SecretBytes>;

}  // namespace saslgate
