/* A small clustered stream of three blocks (70, 85, 100 users; 60, 68, 75 items; some old users
 * stay active) that the whole CCD pipeline learns in well under a second, and a config sized
 * for it (two teachers, LightGCN and MF, d = 8; student d = 4). */
#ifndef CCD_ENGINE_FIXTURE_H
#define CCD_ENGINE_FIXTURE_H

#include "ccd.h"
#include "dataset.h"

enum { BLOCKS = 3 };
extern const int USERS[BLOCKS], ITEMS[BLOCKS];

void make_blocks(ccd_block *blocks);
void free_blocks(ccd_block *blocks);
void small_config(ccd_config *c);

#endif
