"""The night across recordings: the campaign waterfall of each recorder folder and the lines
followed from recording to recording (docs/products.md, "campaign"; ``crunchctl trend``)."""
