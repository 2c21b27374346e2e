// Early-return helpers for absl::Status / absl::StatusOr.
//
// Debian's Abseil (20220623) ships neither ABSL_RETURN_IF_ERROR nor
// ASSIGN_OR_RETURN, so the suite keeps its own two macros here.
#ifndef CNET_LIBS_STATUS_MACROS_H_
#define CNET_LIBS_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CNET_STATUS_CONCAT_INNER_(a, b) a##b
#define CNET_STATUS_CONCAT_(a, b) CNET_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define CNET_RETURN_IF_ERROR(expr)                   \
  do {                                               \
    ::absl::Status cnet_status_ = (expr);            \
    if (!cnet_status_.ok()) return cnet_status_;     \
  } while (false)

// `CNET_ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns the value of an
// absl::StatusOr or returns its status from the enclosing function.
#define CNET_ASSIGN_OR_RETURN(lhs, expr)                                     \
  CNET_ASSIGN_OR_RETURN_IMPL_(CNET_STATUS_CONCAT_(cnet_statusor_, __LINE__), \
                              lhs, expr)
#define CNET_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                                \
  if (!var.ok()) return var.status();               \
  lhs = std::move(var).value()

#endif  // CNET_LIBS_STATUS_MACROS_H_
