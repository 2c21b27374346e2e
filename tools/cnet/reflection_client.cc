#include "tools/cnet/reflection_client.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace cnet::cli {
namespace refl = grpc::reflection::v1alpha;
namespace gp = google::protobuf;

namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  return ctx;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReflectionClient::ListServices() {
  auto stub = refl::ServerReflection::NewStub(channel_);
  auto ctx = Ctx(timeout_);
  auto stream = stub->ServerReflectionInfo(ctx.get());
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  refl::ServerReflectionResponse resp;
  if (!stream->Write(req) || !stream->Read(&resp)) {
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    return s.ok() ? absl::UnavailableError("reflection stream closed") : FromGrpc(s);
  }
  stream->WritesDone();
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  grpc::Status s = stream->Finish();
  if (!s.ok()) return FromGrpc(s);
  return names;
}

absl::Status ReflectionClient::LoadSymbol(const std::string& symbol) {
  auto stub = refl::ServerReflection::NewStub(channel_);
  auto ctx = Ctx(timeout_);
  auto stream = stub->ServerReflectionInfo(ctx.get());
  refl::ServerReflectionRequest req;
  req.set_file_containing_symbol(symbol);
  refl::ServerReflectionResponse resp;
  bool ok = stream->Write(req) && stream->Read(&resp);
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  if (!ok || !s.ok()) return s.ok() ? absl::UnavailableError("reflection failed") : FromGrpc(s);
  if (resp.has_error_response()) {
    return absl::NotFoundError(absl::StrCat("symbol \"", symbol,
                                            "\": ", resp.error_response().error_message()));
  }
  // The answer carries the file and (transitively) the files it imports.
  for (const std::string& bytes : resp.file_descriptor_response().file_descriptor_proto()) {
    gp::FileDescriptorProto file;
    if (!file.ParseFromString(bytes)) return absl::DataLossError("bad descriptor from server");
    gp::FileDescriptorProto existing;
    if (!db_.FindFileByName(file.name(), &existing)) db_.Add(file);
  }
  pool_ = std::make_unique<gp::DescriptorPool>(&db_);
  return absl::OkStatus();
}

absl::StatusOr<const gp::ServiceDescriptor*> ReflectionClient::FindService(
    const std::string& name) {
  if (!pool_ || pool_->FindServiceByName(name) == nullptr) {
    absl::Status s = LoadSymbol(name);
    if (!s.ok()) return s;
  }
  const gp::ServiceDescriptor* service = pool_->FindServiceByName(name);
  if (service == nullptr) {
    return absl::NotFoundError(absl::StrCat("service \"", name, "\": not offered by the server"));
  }
  return service;
}

absl::StatusOr<std::string> ReflectionClient::CallUnary(
    const std::string& method, const std::string& json_request,
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  size_t cut = method.find('/');
  if (cut == std::string::npos) cut = method.rfind('.');
  if (cut == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("method \"", method, "\": expected pkg.Service/Method"));
  }
  auto service = FindService(method.substr(0, cut));
  if (!service.ok()) return service.status();
  const gp::MethodDescriptor* m = (*service)->FindMethodByName(method.substr(cut + 1));
  if (m == nullptr) {
    return absl::NotFoundError(absl::StrCat("method \"", method, "\": no such method"));
  }
  if (m->client_streaming() || m->server_streaming()) {
    return absl::InvalidArgumentError(absl::StrCat("method \"", method, "\": streaming; not supported"));
  }
  std::unique_ptr<gp::Message> request(factory_.GetPrototype(m->input_type())->New());
  auto parsed = gp::util::JsonStringToMessage(json_request.empty() ? "{}" : json_request,
                                              request.get());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request JSON for ", m->input_type()->full_name(), ": ",
                     std::string(parsed.message())));
  }
  std::string wire;
  request->SerializeToString(&wire);
  grpc::Slice slice(wire);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  auto ctx = Ctx(timeout_);
  for (const auto& [k, v] : metadata) ctx->AddMetadata(k, v);
  grpc::GenericStub stub(channel_);
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(ctx.get(), absl::StrCat("/", (*service)->full_name(), "/", m->name()),
                 grpc::StubOptions(), &request_buffer, &response_buffer,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpc(status);
  std::vector<grpc::Slice> slices;
  response_buffer.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<gp::Message> response(factory_.GetPrototype(m->output_type())->New());
  if (!response->ParseFromString(bytes)) return absl::DataLossError("unparsable response");
  std::string json;
  gp::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  auto printed = gp::util::MessageToJsonString(*response, &json, options);
  if (!printed.ok()) return absl::InternalError(std::string(printed.message()));
  return json;
}

}  // namespace cnet::cli
