#pragma once
#include <boost/system/result.hpp>

#include <system_error>

namespace natkeeper {

// A value or why there is none; every fallible operation of natkeeper returns one.
template <class T>
using Result = boost::system::result<T, std::error_code>;

}  // namespace natkeeper
