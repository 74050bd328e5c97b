// The failure table's look-ups, the classification of resolver and socket errors, and the
// man pages' EXIT STATUS text generated from the table.
#include <envkit/exit_status.hpp>

#include <netdb.h>

#include <cerrno>
#include <map>
#include <vector>

namespace envkit {

const FailureRow& failure_row(Failure kind) {
  for (const auto& row : kFailureTable) {
    if (row.kind == kind) return row;
  }
  return kFailureTable.back();  // unreachable: every kind has a row (a test pins it)
}

Failure failure_from_gai(int rc) {
  switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:  // the name exists, but has no address of the family asked for
#endif
      return Failure::name_not_found;
    case EAI_AGAIN:
    case EAI_FAIL:
    case EAI_SYSTEM:  // the resolver's own files or sockets failed
      return Failure::resolver_unavailable;
    case EAI_MEMORY:
      return Failure::internal;
    default:
      return Failure::usage;
  }
}

Failure failure_resolving(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (list) ::freeaddrinfo(list);
  // It resolves now: the earlier failure was the resolver's, and passing.
  return rc == 0 ? Failure::resolver_unavailable : failure_from_gai(rc);
}

Failure failure_from_socket_errno(int err) {
  switch (err) {
    case ECONNREFUSED:
      return Failure::connection_refused;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
    case ETIMEDOUT:
      return Failure::unreachable;
    case EACCES:
    case EPERM:
      return Failure::permission_denied;
    case ENOMEM:
    case ENOBUFS:
      return Failure::internal;
    default:
      return Failure::connection_lost;
  }
}

// roff: a leading '.' or '\'' would be read as a request, and '-' should be a hyphen.
std::string roff_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string exit_status_roff() {
  std::map<int, std::vector<const FailureRow*>> by_code;
  for (const auto& row : kFailureTable) by_code[to_int(row.code)].push_back(&row);
  std::string out;
  for (const auto& [code, rows] : by_code) {
    out += ".TP\n.B " + std::to_string(code) + "\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      if (i > 0) out += ".br\n";
      out += "\\fI" + roff_escape(rows[i]->name) + "\\fR: " + roff_escape(rows[i]->meaning) + ".\n";
    }
  }
  return out;
}

}  // namespace envkit
