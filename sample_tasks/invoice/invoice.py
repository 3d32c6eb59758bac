"""Tiny invoicing helpers: amounts are whole cents, so sums are exact."""


def line_total(quantity: int, unit_price_cents: int) -> int:
    return quantity * unit_price_cents


def apply_discount(total_cents: int, percent: int) -> int:
    """The total less `percent` per cent, rounded down to the cent."""
    return total_cents - total_cents * percent // 10


def invoice_total(lines: list[tuple[int, int]], discount_percent: int = 0) -> int:
    subtotal = sum(line_total(quantity, price) for quantity, price in lines)
    return apply_discount(subtotal, discount_percent)
