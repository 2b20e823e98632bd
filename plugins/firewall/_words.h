/* Word-at-a-time helpers shared by the firewall scanners (_netfilter.c, _filterlog.c): eight
 * bytes of a line loaded as one integer and tested byte by byte in parallel (SWAR). Included
 * after <stdint.h>, <string.h> and the includer's INLINE. */
#ifndef NORMAGENT_FIREWALL_WORDS_H
#define NORMAGENT_FIREWALL_WORDS_H

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LITTLE_ENDIAN_LOADS 1 /* a word loaded from p holds p[i] at bits 8i */
#else
#define LITTLE_ENDIAN_LOADS 0
#endif

/* A word of eight bytes, byte i (at bits 8i: the i-th byte of a little-endian load) `b_i`. */
#define LANES(b0, b1, b2, b3, b4, b5, b6, b7)                                                                    \
    ((uint64_t)(unsigned char)(b0) | (uint64_t)(unsigned char)(b1) << 8 | (uint64_t)(unsigned char)(b2) << 16 |   \
     (uint64_t)(unsigned char)(b3) << 24 | (uint64_t)(unsigned char)(b4) << 32 | (uint64_t)(unsigned char)(b5) << 40 | \
     (uint64_t)(unsigned char)(b6) << 48 | (uint64_t)(unsigned char)(b7) << 56)

/* Eight (four) bytes from p, whatever its alignment. */
INLINE uint64_t load64(const void *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

INLINE uint32_t load32(const void *p) {
    uint32_t w;
    memcpy(&w, p, 4);
    return w;
}

/* Whether each byte of the word w (loaded little-endian) lies in the range of its place:
 * lo_i <= w_i <= hi_i, with 0x20 <= lo_i <= hi_i <= 0x7E. Each test adds within a byte (0x7F -
 * hi_i, 0x80 - lo_i: no carry out of a byte below 0x80), and a byte of 0x80 or more fails by
 * itself, whatever its carry did to the bytes above it. */
INLINE int lanes_in(uint64_t w, uint64_t lo, uint64_t hi) {
    uint64_t above = w + (0x7F * ONES - hi); /* bit 7 set where w_i > hi_i */
    uint64_t from = w + (0x80 * ONES - lo);  /* bit 7 set where w_i >= lo_i */
    return ((w | above | ~from) & HIGHS) == 0;
}

#endif
