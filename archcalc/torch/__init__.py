"""The torch side (optional extra ``archcalc[torch]``): build, measure, verify, bench, import."""
