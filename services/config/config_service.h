// gRPC adapter of the config service: converts protos, checks the caller,
// calls ConfigCore, maps statuses. No configuration logic lives here.
// WatchConfig uses the callback API (no thread held per watcher).
#ifndef CNET_SERVICES_CONFIG_CONFIG_SERVICE_H_
#define CNET_SERVICES_CONFIG_CONFIG_SERVICE_H_

#include "proto/claudenet/v1/config.grpc.pb.h"
#include "services/config/config_core.h"

namespace cnet::configsvc {

class ConfigServiceImpl final
    : public claudenet::v1::ConfigService::WithCallbackMethod_WatchConfig<
          claudenet::v1::ConfigService::Service> {
 public:
  explicit ConfigServiceImpl(ConfigCore* core) : core_(core) {}

  grpc::Status GetConfig(grpc::ServerContext* ctx, const claudenet::v1::GetConfigRequest* req,
                         claudenet::v1::GetConfigResponse* resp) override;
  grpc::Status ValidateConfig(grpc::ServerContext* ctx,
                              const claudenet::v1::ValidateConfigRequest* req,
                              claudenet::v1::ValidateConfigResponse* resp) override;
  grpc::ServerWriteReactor<claudenet::v1::ConfigEvent>* WatchConfig(
      grpc::CallbackServerContext* ctx, const claudenet::v1::WatchConfigRequest* req) override;
  grpc::Status SetOverride(grpc::ServerContext* ctx,
                           const claudenet::v1::SetOverrideRequest* req,
                           claudenet::v1::SetOverrideResponse* resp) override;
  grpc::Status DeleteOverride(grpc::ServerContext* ctx,
                              const claudenet::v1::DeleteOverrideRequest* req,
                              claudenet::v1::DeleteOverrideResponse* resp) override;
  grpc::Status ListOverrides(grpc::ServerContext* ctx,
                             const claudenet::v1::ListOverridesRequest* req,
                             claudenet::v1::ListOverridesResponse* resp) override;
  grpc::Status Reload(grpc::ServerContext* ctx, const claudenet::v1::ReloadConfigRequest* req,
                      claudenet::v1::ReloadConfigResponse* resp) override;

 private:
  ConfigCore* core_;
};

}  // namespace cnet::configsvc

#endif  // CNET_SERVICES_CONFIG_CONFIG_SERVICE_H_
