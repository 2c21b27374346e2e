// gRPC adapter of the skills service (claudenet.v1.SkillService): checks
// the caller, converts protos, calls the engine and the library manager,
// maps statuses (with ErrorDetail in `claudenet-error-bin` and
// `claudenet-retry-after-ms` trailers). No skill logic lives here.
// RunSkill and WatchRun use the callback API: a SYNC run holds no thread
// while it executes, and a watcher none while idle.
#ifndef CNET_SERVICES_SKILLS_SKILLS_SERVICE_H_
#define CNET_SERVICES_SKILLS_SKILLS_SERVICE_H_

#include "libs/clock/clock.h"
#include "proto/claudenet/v1/skills.grpc.pb.h"
#include "services/skills/engine.h"
#include "services/skills/loader.h"

namespace cnet::skills {

class SkillServiceImpl final
    : public claudenet::v1::SkillService::WithCallbackMethod_RunSkill<
          claudenet::v1::SkillService::WithCallbackMethod_WatchRun<
              claudenet::v1::SkillService::Service>> {
 public:
  SkillServiceImpl(Engine* engine, LibraryManager* library, Clock* clock)
      : engine_(engine), library_(library), clock_(clock) {}

  grpc::Status ListSkills(grpc::ServerContext* ctx, const pb::ListSkillsRequest* req,
                          pb::ListSkillsResponse* resp) override;
  grpc::Status GetSkill(grpc::ServerContext* ctx, const pb::GetSkillRequest* req,
                        pb::GetSkillResponse* resp) override;
  grpc::Status ValidateSkill(grpc::ServerContext* ctx, const pb::ValidateSkillRequest* req,
                             pb::ValidateSkillResponse* resp) override;
  grpc::Status Reload(grpc::ServerContext* ctx, const pb::ReloadSkillsRequest* req,
                      pb::ReloadSkillsResponse* resp) override;
  grpc::ServerUnaryReactor* RunSkill(grpc::CallbackServerContext* ctx,
                                     const pb::RunSkillRequest* req,
                                     pb::RunSkillResponse* resp) override;
  grpc::ServerWriteReactor<pb::RunEvent>* WatchRun(grpc::CallbackServerContext* ctx,
                                                   const pb::WatchRunRequest* req) override;
  grpc::Status CancelRun(grpc::ServerContext* ctx, const pb::CancelRunRequest* req,
                         pb::CancelRunResponse* resp) override;
  grpc::Status GetRun(grpc::ServerContext* ctx, const pb::GetRunRequest* req,
                      pb::GetRunResponse* resp) override;
  grpc::Status ListRuns(grpc::ServerContext* ctx, const pb::ListRunsRequest* req,
                        pb::ListRunsResponse* resp) override;
  grpc::Status GetSkillStats(grpc::ServerContext* ctx, const pb::GetSkillStatsRequest* req,
                             pb::GetSkillStatsResponse* resp) override;

 private:
  Engine* engine_;
  LibraryManager* library_;
  Clock* clock_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_SKILLS_SERVICE_H_
