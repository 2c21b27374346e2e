#include "services/tasks/directory.h"

#include <algorithm>

namespace cnet::tasks {

namespace pb = ::claudenet::v1;

bool AgentInfo::HasAll(const std::vector<std::string>& sorted_caps) const {
  return std::includes(capabilities.begin(), capabilities.end(), sorted_caps.begin(),
                       sorted_caps.end());
}

bool AgentInfo::Available() const {
  return health == pb::HEALTH_HEALTHY &&
         (status == pb::AGENT_STATUS_ONLINE || status == pb::AGENT_STATUS_BUSY ||
          status == pb::AGENT_STATUS_UNSPECIFIED);
}

}  // namespace cnet::tasks
