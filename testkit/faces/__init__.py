"""Face test photographs (kept outside the repository) and synthetic enrolment clips made from them."""
