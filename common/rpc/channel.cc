#include "common/rpc/channel.h"

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "common/rpc/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

ABSL_DECLARE_FLAG(int32_t, max_message_bytes);

namespace ctx::rpc {

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = ChannelCredentialsFromFlags();
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  args.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  return grpc::CreateCustomChannel(target, *creds, args);
}

}  // namespace ctx::rpc
