#include "format.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace tp {

namespace {
struct Crc32cTable {
  uint32_t t[256];
  Crc32cTable() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
  }
};
const Crc32cTable kTable;
}  // namespace

#if defined(__x86_64__)
// SSE4.2's crc32 instruction computes the same raw CRC-32C, 8 bytes at a time.
__attribute__((target("sse4.2"))) static uint32_t crc32cHw(const uint8_t* data, size_t len, uint32_t crc) {
  uint64_t c = crc;
  for (; len >= 8; data += 8, len -= 8) {
    uint64_t v;
    memcpy(&v, data, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = uint32_t(c);
  for (; len; data++, len--) c32 = _mm_crc32_u8(c32, *data);
  return c32;
}
static const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

uint32_t crc32c(const uint8_t* data, size_t len, uint32_t crc) {
#if defined(__x86_64__)
  if (kHaveSse42) return crc32cHw(data, len, crc);
#endif
  for (size_t i = 0; i < len; i++) crc = kTable.t[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

void sealBlock(uint8_t* blk, uint32_t xorv) { put32(blk, crc32c(blk + 4, kMetaBlock - 4) ^ xorv); }

bool checkBlock(const uint8_t* blk, uint32_t xorv) { return get32(blk) == (crc32c(blk + 4, kMetaBlock - 4) ^ xorv); }

}  // namespace tp
