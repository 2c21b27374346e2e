// Conversion between absl::Status (what service cores return) and
// grpc::Status (what adapters answer). The numeric codes of both are the
// canonical Google codes, so the mapping keeps the code and the message.
#ifndef CNET_LIBS_STATUS_GRPC_STATUS_H_
#define CNET_LIBS_STATUS_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace cnet {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cnet

#endif  // CNET_LIBS_STATUS_GRPC_STATUS_H_
