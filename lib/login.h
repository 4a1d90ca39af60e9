/* login: see issue */
