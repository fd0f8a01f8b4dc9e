#include "archive/tar_header.h"

#include <cstring>

namespace strata {
namespace {

constexpr int64_t kMaxSafe = (int64_t{1} << 53) - 1;  // Number.MAX_SAFE_INTEGER: sizes and ids reach JavaScript

std::string CString(const uint8_t* b, size_t off, size_t len) {
  const void* nul = memchr(b + off, 0, len);
  size_t n = nul ? static_cast<const uint8_t*>(nul) - (b + off) : len;
  return std::string(reinterpret_cast<const char*>(b + off), n);
}

bool IsBlank(uint8_t c) { return c == 0x20 || (c >= 0x09 && c <= 0x0d); }

std::string Trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && IsBlank(s[a])) a++;
  while (b > a && IsBlank(s[b - 1])) b--;
  return s.substr(a, b - a);
}

int64_t DecodeNumber(const uint8_t* b, size_t off, size_t len, const char* field, bool isSigned = false) {
  if (b[off] & 0x80) {
    // base-256: big-endian two's complement, the first byte's top bit is the marker
    const bool negative = (b[off] & 0x40) != 0;
    // Only the last 8 bytes can hold a safe integer; any other non-sign byte means too large.
    for (size_t i = 0; i + 8 < len; i++) {
      uint8_t byte = i == 0 ? (b[off] & 0x7f) : b[off + i];
      if (byte != (negative ? (i == 0 ? 0x7f : 0xff) : 0)) throw TarFormat(std::string(field) + " too large in header");
    }
    uint64_t v = 0;
    for (size_t i = len >= 8 ? len - 8 : 0; i < len; i++) v = (v << 8) | (i == 0 ? (b[off] & 0x7f) : b[off + i]);
    int64_t s;
    if (negative) {
      if (len < 8) v |= ~uint64_t{0} << (len * 8 - 1);  // sign-extend the short field
      else v |= uint64_t{1} << 63;
      s = static_cast<int64_t>(v);
    } else {
      s = static_cast<int64_t>(v);
      if (v > static_cast<uint64_t>(kMaxSafe)) throw TarFormat(std::string(field) + " too large in header");
    }
    if (s < 0 && !isSigned) throw TarFormat(std::string("negative ") + field + " in header");
    if (s > kMaxSafe || s < -kMaxSafe) throw TarFormat(std::string(field) + " too large in header");
    return s;
  }
  // Octal: optional leading blanks, digits, then blanks up to the field's end or a NUL.
  const size_t end = off + len;
  size_t i = off;
  while (i < end && IsBlank(b[i])) i++;
  uint64_t v = 0;
  bool overflow = false;
  for (; i < end; i++) {
    uint8_t c = b[i];
    if (c < '0' || c > '7') break;
    v = v * 8 + (c - '0');
    if (v > static_cast<uint64_t>(kMaxSafe)) overflow = true;
  }
  for (; i < end && b[i] != 0; i++) {
    if (!IsBlank(b[i])) throw TarFormat(std::string("invalid ") + field + " field \"" + Trim(CString(b, off, len)) + "\"");
  }
  if (overflow) throw TarFormat(std::string(field) + " too large in header");
  return static_cast<int64_t>(v);
}

// Whether a GNU atime/ctime field reads as a number, as Go's archive/tar
// parses it: empty (first byte NUL) or base-256, or octal digits between
// blanks and NULs.
bool GnuTimeField(const uint8_t* b, size_t off) {
  const size_t len = 12;
  if (b[off] == 0 || (b[off] & 0x80)) return true;
  size_t i = off, end = off + len;
  while (i < end && (b[i] == ' ' || b[i] == 0)) i++;
  while (end > i && (b[end - 1] == ' ' || b[end - 1] == 0)) end--;
  for (; i < end; i++)
    if (b[i] < '0' || b[i] > '7') return false;
  return true;
}

bool IsAscii(const std::string& s) {
  for (char c : s)
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  return true;
}

void VerifyChecksum(const uint8_t* b) {
  const int64_t stored = DecodeNumber(b, 148, 8, "checksum");
  int64_t sum = 8 * 32, high = 0;  // the checksum field counts as 8 spaces
  for (size_t i = 0; i < kTarBlock; i++) {
    if (i >= 148 && i < 156) continue;
    sum += b[i];
    if (b[i] > 127) high++;
  }
  // Some old tars summed signed chars: each byte > 127 counts 256 less.
  if (stored != sum && stored != sum - 256 * high) throw TarFormat("header checksum mismatch");
}

// Text fields as JavaScript's Buffer.toString("utf8") reads them: each
// invalid sequence becomes U+FFFD (the WHATWG decoder's rule). Names go
// to JavaScript this way (tar-split re-assembly finds files by them).
std::string WellFormedUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && static_cast<uint8_t>(s[i]) < 0x80) i++;
  if (i == s.size()) return s;
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out = s.substr(0, i);
  const size_t n = s.size();
  while (i < n) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      i++;
      continue;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      out += kReplacement;
      i++;
      continue;
    }
    size_t j = i + 1;
    int k = 0;
    for (; k < need && j < n; k++, j++) {
      const uint8_t d = static_cast<uint8_t>(s[j]);
      if (d < lo || d > hi) break;
      lo = 0x80;
      hi = 0xBF;
    }
    if (k == need) out.append(s, i, j - i);
    else out += kReplacement;  // the offending byte (at j) is read again
    i = j;
  }
  return out;
}

const std::string* Find(const PaxRecords& pax, const char* key) {
  for (auto& kv : pax)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

int64_t PaxNumber(const PaxRecords& pax, const char* key, int64_t fallback) {
  const std::string* s = Find(pax, key);
  if (!s) return fallback;
  bool digits = !s->empty();
  for (char c : *s) digits = digits && c >= '0' && c <= '9';
  if (!digits) throw TarFormat(std::string("invalid PAX ") + key + " \"" + *s + "\"");
  if (s->size() > 16) throw TarFormat(std::string("PAX ") + key + " too large");
  int64_t v = std::stoll(*s);
  if (v > kMaxSafe) throw TarFormat(std::string("PAX ") + key + " too large");
  return v;
}

struct timespec PaxTime(const std::string& value) {
  // -?\d+(\.\d+)?
  size_t i = 0;
  const bool negative = !value.empty() && value[0] == '-';
  if (negative) i++;
  size_t intStart = i;
  while (i < value.size() && value[i] >= '0' && value[i] <= '9') i++;
  size_t intEnd = i;
  size_t fracStart = i, fracEnd = i;
  if (i < value.size() && value[i] == '.') {
    fracStart = ++i;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9') i++;
    fracEnd = i;
    if (fracEnd == fracStart) i = std::string::npos;  // "1." is malformed
  }
  if (intEnd == intStart || i != value.size()) throw TarFormat("invalid PAX time \"" + value + "\"");
  std::string digits = value.substr(intStart, intEnd - intStart);
  size_t nz = digits.find_first_not_of('0');
  if (nz != std::string::npos && digits.size() - nz > 16) throw TarFormat("PAX time out of range \"" + value + "\"");
  int64_t sec = nz == std::string::npos ? 0 : std::stoll(digits.substr(nz));
  if (sec > kMaxSafe) throw TarFormat("PAX time out of range \"" + value + "\"");
  std::string frac = value.substr(fracStart, std::min<size_t>(fracEnd - fracStart, 9));
  frac.append(9 - frac.size(), '0');
  long nsec = std::stol(frac);
  struct timespec t = {};
  // "-1.5" is 1.5 s before the epoch: the fraction counts away from zero, as in Go
  if (negative && nsec > 0) {
    t.tv_sec = static_cast<time_t>(-sec - 1);
    t.tv_nsec = 1000000000 - nsec;
  } else {
    t.tv_sec = static_cast<time_t>(negative ? -sec : sec);
    t.tv_nsec = nsec;
  }
  return t;
}

EntryType TypeFromFlag(char flag, const std::string& name) {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      return EntryType::kFile;
    case '1':
      return EntryType::kLink;
    case '2':
      return EntryType::kSymlink;
    case '3':
      return EntryType::kChar;
    case '4':
      return EntryType::kBlock;
    case '5':
      return EntryType::kDir;
    case '6':
      return EntryType::kFifo;
  }
  throw TarError("ERR_TAR_UNSUPPORTED", std::string("Cannot read the tar archive: unhandled entry type \"") +
                                            std::string(1, flag) + "\" for \"" + name + "\"");
}

}  // namespace

TarError TarFormat(const std::string& why) { return TarError("ERR_TAR_FORMAT", "Cannot read the tar archive: " + why); }

bool IsZeroBlock(const uint8_t* block) {
  for (size_t i = 0; i < kTarBlock; i++)
    if (block[i]) return false;
  return true;
}

RawHeader DecodeBlock(const uint8_t* b) {
  VerifyChecksum(b);
  const bool ustar = memcmp(b + 257, "ustar\0", 6) == 0;
  const bool gnu = memcmp(b + 257, "ustar ", 6) == 0;
  RawHeader h;
  h.name = CString(b, 0, 100);
  // The ustar prefix. GNU headers have atime and ctime there instead, but Go
  // before 1.8 (and so images built with it) wrote a ustar prefix into GNU
  // headers; like Go's reader, a GNU header whose atime/ctime do not read as
  // numbers and whose prefix is ASCII gets its prefix back.
  if (ustar || (gnu && !(GnuTimeField(b, 345) && GnuTimeField(b, 357)))) {
    std::string prefix = CString(b, 345, 155);
    if (!prefix.empty() && (ustar || IsAscii(prefix))) h.name = prefix + "/" + h.name;
  }
  h.flag = static_cast<char>(b[156]);
  h.linkname = CString(b, 157, 100);
  h.mode = static_cast<uint32_t>(DecodeNumber(b, 100, 8, "mode"));
  h.uid = DecodeNumber(b, 108, 8, "uid");
  h.gid = DecodeNumber(b, 116, 8, "gid");
  h.size = DecodeNumber(b, 124, 12, "size");
  h.mtime = DecodeNumber(b, 136, 12, "mtime", true);
  if (ustar || gnu) {
    h.uname = CString(b, 265, 32);
    h.gname = CString(b, 297, 32);
    h.devmajor = DecodeNumber(b, 329, 8, "devmajor");
    h.devminor = DecodeNumber(b, 337, 8, "devminor");
  }
  return h;
}

void DecodePax(const uint8_t* p, size_t n, PaxRecords& out) {
  size_t off = 0;
  while (off < n) {
    if (p[off] == 0) break;  // padding after the last record
    const void* sp = memchr(p + off, ' ', n - off);
    if (!sp) throw TarFormat("malformed PAX record");
    size_t space = static_cast<const uint8_t*>(sp) - p;
    // The length, read as parseInt does: blanks, an optional sign, digits up to the first non-digit.
    size_t i = off;
    while (i < space && IsBlank(p[i])) i++;
    bool minus = i < space && (p[i] == '-' || p[i] == '+') ? p[i++] == '-' : false;
    uint64_t len = 0;
    size_t digits = 0;
    for (; i < space && p[i] >= '0' && p[i] <= '9' && digits < 17; i++, digits++) len = len * 10 + (p[i] - '0');
    if (digits == 0 || minus || len <= space - off || off + len > n) throw TarFormat("malformed PAX record length");
    const uint8_t* rec = p + space + 1;
    size_t recLen = off + len - (space + 1);
    const void* eq = memchr(rec, '=', recLen);
    if (!eq || rec[recLen - 1] != '\n') throw TarFormat("malformed PAX record");
    size_t k = static_cast<const uint8_t*>(eq) - rec;
    std::string key = WellFormedUtf8(std::string(reinterpret_cast<const char*>(rec), k));
    std::string value(reinterpret_cast<const char*>(rec) + k + 1, recLen - k - 2);
    bool replaced = false;
    for (auto& kv : out)
      if (kv.first == key) {
        kv.second = std::move(value);
        replaced = true;
        break;
      }
    if (!replaced) out.emplace_back(std::move(key), std::move(value));
    off += len;
  }
}

EntryHeader MergeHeader(const RawHeader& h, const PaxRecords& pax, const std::string* longName,
                        const std::string* longLink) {
  EntryHeader e;
  const std::string* path = Find(pax, "path");
  e.name = WellFormedUtf8(path ? *path : longName ? *longName : h.name);
  for (auto& kv : pax)
    if (kv.first.compare(0, 13, "SCHILY.xattr.") == 0) e.xattrs.emplace_back(kv.first.substr(13), kv.second);
  e.type = TypeFromFlag(h.flag, e.name);
  e.mode = h.mode & 07777;
  e.uid = PaxNumber(pax, "uid", h.uid);
  e.gid = PaxNumber(pax, "gid", h.gid);
  e.size = PaxNumber(pax, "size", h.size);
  const std::string* mtime = Find(pax, "mtime");
  if (mtime) e.mtime = PaxTime(*mtime);
  else e.mtime.tv_sec = static_cast<time_t>(h.mtime);
  const std::string* atime = Find(pax, "atime");
  if (atime) {
    e.atime = PaxTime(*atime);
    e.hasAtime = true;
  }
  const std::string* linkpath = Find(pax, "linkpath");
  e.linkname = WellFormedUtf8(linkpath ? *linkpath : longLink ? *longLink : h.linkname);
  e.devmajor = h.devmajor;
  e.devminor = h.devminor;
  // A regular file whose name ends in "/" is a directory in old archives (V7).
  if (e.type == EntryType::kFile && h.flag == '\0' && !e.name.empty() && e.name.back() == '/') e.type = EntryType::kDir;
  return e;
}

}  // namespace strata
