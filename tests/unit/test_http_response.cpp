#include <catch2/catch.hpp>

#include <string>

#include "mappers/upnp/http_response.hpp"

using natkeeper::upnp::HttpResponseLimits;
using natkeeper::upnp::HttpResponseReader;
using State = HttpResponseReader::State;

namespace {

// Feeds `text` one byte at a time: every split point must give the same result.
State feed_bytewise(HttpResponseReader& reader, std::string_view text) {
  for (const char c : text) reader.feed({&c, 1});
  return reader.state();
}

}  // namespace

TEST_CASE("a response with Content-Length completes at its last byte, however it is split") {
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nServer: x\r\n\r\n<root/>";
  HttpResponseReader whole;
  CHECK(whole.feed(response) == State::complete);
  CHECK(whole.status() == 200);
  CHECK(whole.body() == "<root/>");
  CHECK(whole.header("server") == "x");

  HttpResponseReader bytewise;
  CHECK(feed_bytewise(bytewise, response) == State::complete);
  CHECK(bytewise.body() == "<root/>");

  HttpResponseReader short_body;
  CHECK(short_body.feed(response.substr(0, response.size() - 1)) == State::need_more);
  CHECK(short_body.finish() == State::failed);
}

TEST_CASE("a chunked body is reassembled, with extensions and trailers") {
  const std::string response =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;name=value\r\n<ro\r\n4\r\not/>\r\n0\r\nExpires: never\r\n\r\n";
  HttpResponseReader reader;
  CHECK(feed_bytewise(reader, response) == State::complete);
  CHECK(reader.body() == "<root/>");
}

TEST_CASE("a body without length runs until the connection closes; LF-only lines are read") {
  HttpResponseReader reader;
  CHECK(reader.feed("HTTP/1.0 200 OK\nContent-Type: text/xml\n\n<ro") == State::need_more);
  CHECK(reader.feed("ot/>") == State::need_more);
  CHECK(reader.finish() == State::complete);
  CHECK(reader.body() == "<root/>");
}

TEST_CASE("the limits hold whatever the framing") {
  const HttpResponseLimits limits{64, 16};
  SECTION("an endless header") {
    HttpResponseReader reader(limits);
    CHECK(reader.feed("HTTP/1.1 200 OK\r\n") == State::need_more);
    CHECK(reader.feed("X-Padding: " + std::string(100, 'a')) == State::failed);
    CHECK_THAT(reader.error(), Catch::Contains("header is larger than 64 bytes"));
  }
  SECTION("a declared length over the limit is refused before any body byte") {
    HttpResponseReader reader(limits);
    CHECK(reader.feed("HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n") == State::failed);
    CHECK_THAT(reader.error(), Catch::Contains("50000000 bytes"));
  }
  SECTION("a body until close") {
    HttpResponseReader reader(limits);
    reader.feed("HTTP/1.1 200 OK\r\n\r\n");
    CHECK(reader.feed(std::string(16, 'x')) == State::need_more);
    CHECK(reader.feed("y") == State::failed);
    CHECK(reader.body().size() <= 16);
  }
  SECTION("chunk sizes that add up past the limit, or overflow") {
    HttpResponseReader reader(limits);
    CHECK(reader.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n") == State::need_more);
    CHECK(reader.feed("9\r\n") == State::failed);
    HttpResponseReader overflow(limits);
    CHECK(overflow.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n") ==
          State::failed);
  }
  SECTION("an endless chunk-size line") {
    HttpResponseReader reader(limits);
    reader.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1");
    CHECK(reader.feed(std::string(2000, ';')) == State::failed);
  }
}

TEST_CASE("malformed heads are refused with a reason") {
  const char* const heads[] = {
      "SSDP/1.0 200 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: header\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\n",
  };
  for (const auto* head : heads) {
    HttpResponseReader reader;
    CAPTURE(head);
    CHECK(reader.feed(head) == State::failed);
    CHECK_FALSE(reader.error().empty());
  }
}

TEST_CASE("a redirect completes with its status and Location, for the caller to refuse") {
  HttpResponseReader reader;
  CHECK(reader.feed("HTTP/1.1 302 Found\r\nLocation: http://10.77.0.66/\r\nContent-Length: 0\r\n\r\n") ==
        State::complete);
  CHECK(reader.status() == 302);
  CHECK(reader.header("LOCATION") == "http://10.77.0.66/");
}
