#include "secret.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace saslgate {

SecretBytes::SecretBytes(const void* data, size_t size) : size_(size) {
  bytes_ = static_cast<unsigned char*>(std::malloc(size + 1));
  if (bytes_ == nullptr) throw std::bad_alloc();
  if (size > 0) std::memcpy(bytes_, data, size);
  bytes_[size] = 0;
}

SecretBytes::~SecretBytes() {
  Wipe();
  std::free(bytes_);
}

void SecretBytes::Wipe() {
  // explicit_bzero (glibc >= 2.25): a store the compiler may not drop as dead.
  if (bytes_ != nullptr) explicit_bzero(bytes_, size_ + 1);
}

}  // namespace saslgate
