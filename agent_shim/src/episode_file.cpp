// Episode files: the seed's on_episode_start(path) reads an episode YAML. The shim reads
// it, checks its shape, and sends its contents in episode.started; the processor judges
// the resilience block (it knows the keys and their ranges) and answers an invalid one
// with an alert naming the key.
#include <yaml-cpp/yaml.h>

#include "rrh/shim.hpp"

namespace rrh {
namespace {

/// A YAML scalar as the most specific setting value: integer, number, boolean, text.
setting_value scalar_value(const YAML::Node& node) {
  const auto text = node.Scalar();
  std::int64_t integer = 0;
  double number = 0;
  bool flag = false;
  if (YAML::convert<std::int64_t>::decode(node, integer)) return integer;
  if (YAML::convert<double>::decode(node, number)) return number;
  if (text == "true" || text == "false" || text == "True" || text == "False") {
    if (YAML::convert<bool>::decode(node, flag)) return flag;
  }
  return text;
}

/// A list value (e.g. non_retryable_errors) travels as comma-separated text.
setting_value list_value(const YAML::Node& node) {
  std::string joined;
  for (const auto& item : node) {
    if (!joined.empty()) joined += ",";
    joined += item.Scalar();
  }
  return joined;
}

}  // namespace

status shim::start_episode_from_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& failure) {
    return make_error(errc::config, "episode file '" + path + "': " + failure.what());
  }
  const auto fail = [&path](const std::string& why) {
    return make_error(errc::config, "episode file '" + path + "': " + why);
  };
  if (!root.IsMap()) return fail("must hold a map with at least 'id'");
  std::string id;
  std::string name;
  std::vector<std::string> agents;
  settings resilience;
  for (const auto& entry : root) {
    const auto key = entry.first.Scalar();
    const auto& value = entry.second;
    if (key == "id" || key == "name") {
      if (!value.IsScalar()) return fail("'" + key + "' must be a single value");
      (key == "id" ? id : name) = value.Scalar();
    } else if (key == "agents") {
      if (!value.IsSequence()) return fail("'agents' must be a list of agent ids");
      for (const auto& agent : value) {
        if (!agent.IsScalar() || !is_valid_id(agent.Scalar())) {
          return fail("'agents' holds an invalid agent id");
        }
        agents.push_back(agent.Scalar());
      }
    } else if (key == "resilience") {
      if (!value.IsMap()) return fail("'resilience' must be a map of configuration keys");
      for (const auto& setting : value) {
        const auto setting_key = setting.first.Scalar();
        if (setting.second.IsScalar()) {
          resilience[setting_key] = scalar_value(setting.second);
        } else if (setting.second.IsSequence()) {
          resilience[setting_key] = list_value(setting.second);
        } else {
          return fail("resilience." + setting_key + " must be a value or a list");
        }
      }
    } else {
      return fail("unknown key '" + key + "' (known: id, name, agents, resilience)");
    }
  }
  if (id.empty()) return fail("'id' is missing");
  if (!is_valid_id(id)) return fail("'id' '" + id + "' is not a valid id (1-128 of A-Za-z0-9._:@-)");
  return start_episode(id, name.empty() ? id : name, resilience, agents);
}

}  // namespace rrh
