#include <catch2/catch.hpp>

#include "agent/gateway/nat_diagnosis.hpp"

using namespace natkeeper;
using boost::asio::ip::make_address;

TEST_CASE("a private external address means double NAT, 100.64/10 means CGNAT") {
  CHECK(classify_external_address(make_address("192.168.1.20")) == NatKind::double_nat);
  CHECK(classify_external_address(make_address("10.0.0.2")) == NatKind::double_nat);
  CHECK(classify_external_address(make_address("172.16.5.1")) == NatKind::double_nat);
  CHECK(classify_external_address(make_address("172.31.255.1")) == NatKind::double_nat);
  CHECK(classify_external_address(make_address("100.64.0.2")) == NatKind::cgnat);
  CHECK(classify_external_address(make_address("100.127.255.254")) == NatKind::cgnat);
}

TEST_CASE("a public-looking external address needs an outside observer") {
  CHECK(classify_external_address(make_address("203.0.113.1")) == NatKind::unknown);
  CHECK(classify_external_address(make_address("172.32.0.1")) == NatKind::unknown);
  CHECK(classify_external_address(make_address("100.128.0.1")) == NatKind::unknown);
  CHECK(to_string(NatKind::double_nat) == "double");
  CHECK_THAT(std::string(explain(NatKind::cgnat)), Catch::Contains("provider"));
}

TEST_CASE("the observer's view against the gateway's address tells single from double NAT") {
  const auto gateway = std::optional(make_address("203.0.113.1"));
  CHECK(diagnose_nat(gateway, make_address("203.0.113.1")) == NatKind::single);
  CHECK(diagnose_nat(gateway, make_address("198.51.100.7")) == NatKind::double_nat);
  CHECK(diagnose_nat(gateway, std::nullopt) == NatKind::unknown);
  CHECK(diagnose_nat(std::nullopt, make_address("203.0.113.1")) == NatKind::unknown);
  // The gateway's own address decides when it is private or shared, whatever was observed.
  CHECK(diagnose_nat(make_address("100.64.0.2"), make_address("203.0.113.1")) == NatKind::cgnat);
  CHECK(diagnose_nat(make_address("192.168.0.2"), make_address("203.0.113.1")) == NatKind::double_nat);
  CHECK(diagnose_nat(make_address("100.64.0.2"), std::nullopt) == NatKind::cgnat);
}
