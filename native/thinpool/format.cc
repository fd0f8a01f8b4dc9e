#include "format.h"

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

uint32_t crc32c(const uint8_t* data, size_t len, uint32_t crc) {
  for (size_t i = 0; i < len; i++) crc = kTable.t[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

void sealBlock(uint8_t* blk, uint32_t xorv) { put32(blk, crc32c(blk + 4, kMetaBlock - 4) ^ xorv); }

bool checkBlock(const uint8_t* blk, uint32_t xorv) {
  return get32(blk) == (crc32c(blk + 4, kMetaBlock - 4) ^ xorv);
}

}  // namespace tp
