#ifndef POLICY_COMMON_SERVER_ARENA_ALLOCATOR_H_
#define POLICY_COMMON_SERVER_ARENA_ALLOCATOR_H_

#include "google/protobuf/arena.h"
#include "grpcpp/support/message_allocator.h"

namespace policy::server {

// Puts the request and response of each call of a callback unary method on one protobuf
// arena, whose first block is part of the per-call holder: their sub-messages and strings
// then cost no allocation of their own. For handlers whose responses hold many repeated
// messages. Register with the generated SetMessageAllocatorFor_<Method>; it must outlive the
// server. Thread-safe.
template <typename Request, typename Response>
class ArenaMessageAllocator : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  class Holder : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options(block_)) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static constexpr size_t kBlockBytes = 8192;
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = kBlockBytes;
      return options;
    }
    alignas(16) char block_[kBlockBytes];
    google::protobuf::Arena arena_;  // After block_: constructed on it, destroyed first.
  };
};

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_ARENA_ALLOCATOR_H_
