import unittest

from invoice import apply_discount, invoice_total, line_total


class InvoiceTest(unittest.TestCase):
    def test_line_total(self) -> None:
        self.assertEqual(line_total(3, 250), 750)

    def test_no_discount_changes_nothing(self) -> None:
        self.assertEqual(apply_discount(10_000, 0), 10_000)

    def test_fifteen_per_cent_off(self) -> None:
        self.assertEqual(apply_discount(10_000, 15), 8_500)

    def test_invoice_total(self) -> None:
        self.assertEqual(invoice_total([(2, 500), (1, 1_000)], discount_percent=10), 1_800)


if __name__ == "__main__":
    unittest.main()
