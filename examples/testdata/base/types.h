// Basic types: included by almost everything, includes nothing.
#ifndef BASE_TYPES_H
#define BASE_TYPES_H

typedef unsigned long size_type;

struct point {
  int x;
  int y;
};

#endif  // BASE_TYPES_H
