#pragma once
// Lets Catch print boost::system::result in assertion messages (its own
// operator<< needs both alternatives to be printable, which ours are not).
#include <boost/system/result.hpp>
#include <catch2/catch.hpp>

namespace Catch {
template <class T, class E>
struct StringMaker<boost::system::result<T, E>> {
  static std::string convert(const boost::system::result<T, E>& r) { return r ? "{value}" : "{error}"; }
};
}  // namespace Catch
