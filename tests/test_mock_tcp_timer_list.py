"""The mock's struct timer_list (clock.py Timer): what TCP's timers rely on."""
from harness.mockkernel.clock import Clock, Timer


def _timer(clock: Clock) -> tuple[Timer, list[float]]:
    fired: list[float] = []
    return Timer(clock, lambda: fired.append(clock.now)), fired


def test_mod_timer_to_a_later_expiry_fires_once_at_the_later_time():
    clock = Clock()
    timer, fired = _timer(clock)
    timer.mod_timer(1.0)
    timer.mod_timer(3.0)
    clock.advance(5)
    assert fired == [3.0] and not timer.pending


def test_mod_timer_to_an_earlier_expiry_fires_once_at_the_earlier_time():
    clock = Clock()
    timer, fired = _timer(clock)
    timer.mod_timer(3.0)
    timer.mod_timer(1.0)
    clock.advance(5)
    assert fired == [1.0]


def test_del_timer_cancels_and_a_new_mod_timer_arms_again():
    clock = Clock()
    timer, fired = _timer(clock)
    timer.mod_timer(1.0)
    timer.del_timer()
    clock.advance(2)
    assert fired == [] and not timer.pending
    timer.mod_timer(2.5)
    assert timer.pending
    clock.advance(1)
    assert fired == [2.5]


def test_a_handler_may_rearm_its_own_timer():
    clock = Clock()
    fired: list[float] = []

    def handler() -> None:
        fired.append(clock.now)
        if len(fired) < 3:
            timer.mod_timer(clock.now + 0.5)

    timer = Timer(clock, handler)
    timer.mod_timer(1.0)
    clock.advance(10)
    assert fired == [1.0, 1.5, 2.0]
