// STUN responses arrive from the internet (and anything on the path).
#include "agent/codecs/stun_codec.hpp"
#include "tests/fuzz/fuzz_target.hpp"

NATKEEPER_FUZZ_TARGET(stun_response) {
  const auto response = natkeeper::stun::decode_binding_response({data, size});
  if (response && response->type != natkeeper::stun::MessageType::binding_success &&
      response->type != natkeeper::stun::MessageType::binding_error)
    __builtin_trap();
  return 0;
}
