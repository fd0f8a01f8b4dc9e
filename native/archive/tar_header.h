// The one tar header decoder of strata's product code: ustar, GNU ('L'/'K'
// long names, base-256 numbers), V7 and PAX records. The applier
// (apply/tar_apply.h) and the archive index (tar_index.cc) use it; the
// tests' JavaScript reader (test/helpers/tar-decode.ts) follows the same
// rules and messages and is compared with it.
#pragma once

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace strata {

constexpr size_t kTarBlock = 512;

// A refusal of the archive (or of one entry): becomes a StrataError with `code`.
struct TarError : std::runtime_error {
  TarError(std::string code, const std::string& message) : std::runtime_error(message), code(std::move(code)) {}
  std::string code;
};

// "Cannot read the tar archive: <why>" (ERR_TAR_FORMAT).
TarError TarFormat(const std::string& why);

enum class EntryType { kFile, kLink, kSymlink, kChar, kBlock, kDir, kFifo };

// One block as stored, before PAX and GNU records are merged in.
struct RawHeader {
  char flag = 0;
  std::string name, linkname, uname, gname;
  uint32_t mode = 0;
  int64_t uid = 0, gid = 0, size = 0, mtime = 0, devmajor = 0, devminor = 0;
};

using PaxRecords = std::vector<std::pair<std::string, std::string>>;

// An entry's header with PAX and GNU records applied (TarHeader in tar-header.ts).
struct EntryHeader {
  std::string name;  // as in the archive, not cleaned
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;  // 07777 bits
  int64_t uid = 0, gid = 0, size = 0, devmajor = 0, devminor = 0;
  struct timespec mtime = {}, atime = {};
  bool hasAtime = false;
  std::string linkname;
  PaxRecords xattrs;  // SCHILY.xattr.* with the prefix removed, in first-seen order
};

bool IsZeroBlock(const uint8_t* block);
// Verifies the checksum and decodes the fields of one header block.
RawHeader DecodeBlock(const uint8_t* block);
// Adds the records of a PAX body to `out` (a later value for a key replaces the earlier one).
void DecodePax(const uint8_t* p, size_t n, PaxRecords& out);
// Merges PAX records and GNU long names into `h`; throws ERR_TAR_UNSUPPORTED for unknown types.
EntryHeader MergeHeader(const RawHeader& h, const PaxRecords& pax, const std::string* longName,
                        const std::string* longLink);

}  // namespace strata
