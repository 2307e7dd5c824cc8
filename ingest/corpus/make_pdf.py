"""Regenerates eu/warranty-eu.pdf, the corpus's PDF document (a real text layer, core fonts).

Run from anywhere: `pip install fpdf2==2.8.3 && python3 ingest/corpus/make_pdf.py`. The PDF is
committed, so tests and the demo never need Python; rerun this only when the text below changes.
Core PDF fonts cover Latin-1 only, so amounts are written "EUR 49" rather than with the euro sign.
"""

from pathlib import Path

from fpdf import FPDF

TITLE = "Legal Guarantee and Warranty (European Union)"

# (heading level, text): level 0 is body text, 1-2 are headings.
CONTENT = [
    (1, "Legal Guarantee and Warranty"),
    (0, "This document applies to goods bought from Northwind Outfitters B.V. by consumers in the "
        "member states of the European Union. Prices are in euro (EUR)."),
    (2, "Legal guarantee of conformity"),
    (0, "Under Directive (EU) 2019/771 every product comes with a legal guarantee of conformity of "
        "2 years from delivery. If a product is not in conformity you are entitled to a repair or a "
        "replacement free of charge, and if that is impossible or fails, to a price reduction or a refund."),
    (0, "Any lack of conformity that appears within 1 year of delivery is presumed to have existed at "
        "delivery, unless we prove otherwise."),
    (2, "Northwind commercial warranty"),
    (0, "In addition to the legal guarantee, tents and sleeping bags carry a commercial warranty of "
        "3 years from delivery against defects in materials and workmanship. The commercial warranty "
        "never limits your legal guarantee."),
    (2, "How to make a claim"),
    (0, "Email guarantee-eu@northwind-outfitters.example with your order number and photos of the defect. "
        "We reply within 3 working days and send a free DHL or GLS label for accepted claims."),
    (0, "Repairs are completed within 21 days of receiving the product. If a repair takes longer, you may "
        "choose a replacement or a refund instead."),
    (2, "Out-of-warranty repairs"),
    (0, "After the guarantee periods end we offer paid repairs. A repair estimate costs EUR 15, which is "
        "deducted from the repair price if you go ahead."),
]


def main() -> None:
    pdf = FPDF(format="A4")
    pdf.set_title(TITLE)
    pdf.set_author("Northwind Outfitters")
    # A fixed creation date keeps the committed file byte-identical across regenerations.
    pdf.set_creation_date(__import__("datetime").datetime(2025, 11, 1))
    pdf.add_page()
    for level, text in CONTENT:
        if level == 0:
            pdf.set_font("Helvetica", size=11)
            pdf.multi_cell(0, 6, text)
            pdf.ln(3)
        else:
            pdf.set_font("Helvetica", style="B", size=18 if level == 1 else 14)
            pdf.multi_cell(0, 9, text)
            pdf.ln(2)
    out = Path(__file__).resolve().parent / "eu" / "warranty-eu.pdf"
    pdf.output(str(out))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
