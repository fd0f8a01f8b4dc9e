// Sha256: the layer's diffID, hashed on the applier's thread as the tar
// arrives, so the JavaScript thread never reads the bytes. It uses the
// OpenSSL that Node itself links and exports to addons (its headers come
// with Node's), so the hash is the same code as node:crypto's.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace strata {

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
      EVP_MD_CTX_free(ctx_);
      throw std::runtime_error("Cannot hash the layer: sha256 is unavailable");
    }
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* p, size_t n) {
    EVP_DigestUpdate(ctx_, p, n);
    bytes_ += n;
  }
  // Bytes hashed so far.
  uint64_t bytes() const { return bytes_; }
  // "sha256:<hex>" of everything hashed; the object is spent afterwards.
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char kDigits[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < len; i++) {
      out += kDigits[md[i] >> 4];
      out += kDigits[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
  uint64_t bytes_ = 0;
};

}  // namespace strata
