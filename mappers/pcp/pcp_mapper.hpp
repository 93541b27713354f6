#pragma once
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "mappers/mapper.hpp"
#include "mappers/pcp/pcp_client.hpp"

namespace natkeeper::pcp {

struct AnnounceAnswer {
  std::uint32_t epoch = 0;
  std::chrono::steady_clock::duration round_trip{};
};

// Drives pcp::Client on the event loop through a UDP socket connected to the
// gateway's port 5351: the kernel then delivers only the gateway's datagrams,
// and an ICMP port-unreachable fails the pending requests at once.
class PcpMapper final : public Mapper {
 public:
  PcpMapper(asio::any_io_executor executor, ClientOptions options);
  ~PcpMapper() override;

  std::error_code open();

  Method method() const override { return Method::pcp; }
  // PCP has no "what is my address" request: the address comes with a
  // mapping, so when no mapping has been made yet a short one is made for a
  // port of this mapper's own socket and removed again.
  asio::awaitable<Result<asio::ip::address>> external_address() override;
  asio::awaitable<Result<Mapping>> map(MapRequest request) override;
  asio::awaitable<std::error_code> unmap(Mapping mapping) override;

  // Does the gateway speak PCP version 2? (ANNOUNCE, RFC 6887 §14.1)
  asio::awaitable<Result<AnnounceAnswer>> announce();

  // Renews `sample`: the answer carries the server's epoch and the external
  // address, and its nonce proves it is the gateway's (RFC 6887 §11.2).
  asio::awaitable<Result<GatewayCheck>> check(const Mapping& sample) override;
  bool take_gateway_lost_state() override { return client_.take_server_lost_state(); }
  std::uint64_t dropped() const override { return client_.dropped_total(); }

 private:
  struct Waiter;
  asio::awaitable<Completion> await_completion(RequestId id);
  void start_driver();
  asio::awaitable<void> drive();
  void flush_outgoing();
  void deliver_completions();
  void fail_all(std::error_code error);

  asio::any_io_executor executor_;
  asio::ip::udp::socket socket_;
  asio::steady_timer wakeup_;
  Client client_;
  ClientOptions options_;
  std::map<RequestId, Waiter*> waiters_;
  bool driving_ = false;
  std::optional<asio::ip::address> external_ip_;
  // One byte more than a PCP message may have, so an oversized one is seen as such.
  std::array<std::uint8_t, kMaxMessageSize + 4> buffer_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace natkeeper::pcp
