"""Administrative units at any level (county, township, village, grid cell) and assignment of places to them."""
