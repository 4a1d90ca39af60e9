/* userdb: see issue */
