// RFC 3339 formatting and parsing with <chrono> calendar types (no locale, no time zone db).
#include <envkit/timefmt.hpp>

#include <cstdio>

namespace envkit {

using namespace std::chrono;

std::string format_utc(SysMillis t, bool millis) {
  // Digits by hand: snprintf was the largest cost of making a record.
  auto day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss<milliseconds> hms{t - day};
  auto ms = static_cast<unsigned>(hms.subseconds().count());
  char buf[32];
  char* p = buf;
  auto put = [&p](unsigned v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    p += width;
  };
  int y = static_cast<int>(ymd.year());
  if (y < 0 || y > 9999) {  // outside RFC 3339's four digits: rare, so the slow path is fine
    char slow[64];
    std::snprintf(slow, sizeof slow, "%d-%02u-%02uT%02d:%02d:%02d.%03uZ", y, static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()), ms);
    return slow;
  }
  put(static_cast<unsigned>(y), 4);
  *p++ = '-';
  put(static_cast<unsigned>(ymd.month()), 2);
  *p++ = '-';
  put(static_cast<unsigned>(ymd.day()), 2);
  *p++ = 'T';
  put(static_cast<unsigned>(hms.hours().count()), 2);
  *p++ = ':';
  put(static_cast<unsigned>(hms.minutes().count()), 2);
  *p++ = ':';
  put(static_cast<unsigned>(hms.seconds().count()), 2);
  if (millis || ms != 0) {
    *p++ = '.';
    put(ms, 3);
  }
  *p++ = 'Z';
  return std::string(buf, p);
}

Result<SysMillis> parse_time(std::string_view s, int default_offset_seconds, bool offset_required) {
  auto bad = [&](const char* why) {
    return Error{Exit::data, "invalid time '" + std::string(s.substr(0, 64)) + "': " + why};
  };
  size_t i = 0;
  auto digits = [&](size_t n, int& out) {
    if (i + n > s.size()) return false;
    out = 0;
    for (size_t k = 0; k < n; ++k) {
      char c = s[i + k];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    i += n;
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int y, mo, d, h, mi, sec = 0;
  if (!digits(4, y) || !expect('-') || !digits(2, mo) || !expect('-') || !digits(2, d)) {
    return bad("expected YYYY-MM-DD");
  }
  if (!(expect('T') || expect('t') || expect(' ')) || !digits(2, h) || !expect(':') || !digits(2, mi)) {
    return bad("expected THH:MM");
  }
  if (expect(':') && !digits(2, sec)) return bad("expected seconds after ':'");
  int64_t frac_ms = 0;
  if (expect('.')) {
    size_t start = i;
    int64_t scale = 100;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      frac_ms += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == start || i - start > 9) return bad("expected 1 to 9 digits of fraction");
  }
  int offset = default_offset_seconds;
  if (i < s.size()) {
    if (s[i] == 'Z' || s[i] == 'z') {
      offset = 0;
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int oh, om;
      if (!digits(2, oh) || !expect(':') || !digits(2, om) || oh > 23 || om > 59) {
        return bad("expected an offset like +05:00");
      }
      offset = sign * (oh * 3600 + om * 60);
    } else {
      return bad("unexpected text after the time");
    }
  } else if (offset_required) {
    return bad("no UTC offset (add Z or +HH:MM)");
  }
  if (i != s.size()) return bad("unexpected text after the offset");
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return bad("no such date");
  if (h > 23 || mi > 59 || sec > 60) return bad("no such time of day");  // 60: leap second
  auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{frac_ms} -
           seconds{offset};
  return SysMillis{t};
}

}  // namespace envkit
