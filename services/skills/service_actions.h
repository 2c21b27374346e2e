// The actions that call other services (MACS, Registry, Tasks) or the
// skills service's own data store: argument mapping to the services'
// requests and the documented output maps. Used by ActionRegistry.
#ifndef CNET_SERVICES_SKILLS_SERVICE_ACTIONS_H_
#define CNET_SERVICES_SKILLS_SERVICE_ACTIONS_H_

#include "absl/status/statusor.h"
#include "services/skills/actions.h"

namespace cnet::skills {

absl::StatusOr<Json> MessagingSend(MessagingBackend* b, const Json& args, ActionCall& call,
                                   bool broadcast);
absl::StatusOr<Json> MessagingFetch(MessagingBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> MessagingAck(MessagingBackend* b, const Json& args, ActionCall& call);

absl::StatusOr<Json> RegistryList(RegistryBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> RegistryHealth(RegistryBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> RegistryNetwork(RegistryBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> RegistryRegister(RegistryBackend* b, const Json& args, ActionCall& call);

absl::StatusOr<Json> TasksCreate(TaskBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> TasksGet(TaskBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> TasksList(TaskBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> TasksClaim(TaskBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> TasksProgress(TaskBackend* b, const Json& args, ActionCall& call);
absl::StatusOr<Json> TasksComplete(TaskBackend* b, const Json& args, ActionCall& call);

absl::StatusOr<Json> DataStoreAction(DataStore* d, const Json& args, ActionCall& call);
absl::StatusOr<Json> DataRetrieve(DataStore* d, const Json& args, ActionCall& call);
absl::StatusOr<Json> DataDeleteAction(DataStore* d, const Json& args, ActionCall& call);
absl::StatusOr<Json> DataListAction(DataStore* d, const Json& args, ActionCall& call);

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_SERVICE_ACTIONS_H_
