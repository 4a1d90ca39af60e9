/* session: see issue */
