#include "agent/gateway/request_window.hpp"

#include <algorithm>

namespace natkeeper {

void RequestWindow::on_answer(Duration latency) {
  if (latency > settings_.target_latency) {
    shrink();
    return;
  }
  if (ignore_late_ > 0) --ignore_late_;
  if (++prompt_answers_ >= size_ && size_ < std::max<std::size_t>(settings_.maximum, 1)) {
    ++size_;
    prompt_answers_ = 0;
  }
}

void RequestWindow::on_timeout() { shrink(); }

void RequestWindow::shrink() {
  prompt_answers_ = 0;
  if (ignore_late_ > 0) {
    --ignore_late_;
    return;
  }
  // Those in flight now were sent with the old size.
  ignore_late_ = size_ - 1;
  size_ = std::max<std::size_t>(size_ / 2, 1);
}

}  // namespace natkeeper
