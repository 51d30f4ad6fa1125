/* alloc.h: mixed-precision allocation (lib/alloc): one quantization scheme
 * per tensor, from the calibration file's candidates, minimising a summed
 * sensitivity under a total size budget.
 *
 * - The knapsack: items (tensors) each take exactly one choice (scheme); sizes
 *   and costs add up. Solved exactly as a 0-1 integer programme with GLPK
 *   (branch and cut), with optional per-choice bans (minimum bits) and further
 *   linear budgets (bit operations, latency from a cost table, a second
 *   metric). The dynamic programme over sizes (shrink_pareto, sense.h) is the
 *   independent cross-check for the size budget alone.
 * - Objectives (HAWQ-V2, measured KL, the layer-local proxy, and MixDQ's
 *   metric-decoupled form) turn a calibration into costs; shrink_allocate
 *   matches its tensors to a quantization plan, solves, and rewrites the plan.
 *
 * Not here: measuring sensitivities (sense.h), quantizing (quantize.h). */
#ifndef SHRINK_ALLOC_H
#define SHRINK_ALLOC_H

#include "quantize.h"
#include "sense.h"

#define SHRINK_ALLOC_MAX_EXTRA 4

typedef struct {
	int n_items, n_choices;
	const int64_t *size;	/* n_items x n_choices, row-major, bytes (>= 1) */
	const double *cost;	/* n_items x n_choices, finite: what is minimised */
	const uint8_t *allowed; /* NULL: every choice; else nonzero where the choice may be taken */
	int64_t budget;		/* total size at most this many bytes */
	int n_extra;		/* further budgets: sum extra[k][item, choice] <= extra_cap[k] */
	const double *extra[SHRINK_ALLOC_MAX_EXTRA];
	double extra_cap[SHRINK_ALLOC_MAX_EXTRA];
	double time_limit; /* seconds for the integer programme; 0 = none */
} shrink_knapsack;

typedef struct {
	int *choice;  /* n_items */
	int64_t size; /* total bytes of the choices */
	double cost;  /* summed cost of the choices (in double, from the choices) */
	double extra[SHRINK_ALLOC_MAX_EXTRA];
	char status[48]; /* "optimal", "feasible (time limit)" */
	bool optimal;	 /* proved optimal (relative objective tolerance 1e-10) */
	double gap;	 /* relative gap between the solution and the solver's best bound; 0 when optimal */
	double lp_bound; /* the LP relaxation's optimum: a lower bound on cost */
	double seconds;
	bool exact;	  /* dynamic programme: sizes counted exactly (else rounded up, possibly suboptimal) */
	int64_t min_size; /* smallest total size any allowed configuration meeting the extra budgets has; -1 if none */
} shrink_knapsack_solution;

/* Exact 0-1 integer programme (GLPK). When nothing fits: SHRINK_EINPUT, with
 * the smallest feasible budget in the message and in s->min_size. */
shrink_status shrink_knapsack_ilp(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err);
/* The same by dynamic programming over total size (shrink_pareto); extra
 * budgets are not supported (SHRINK_EUSAGE). */
shrink_status shrink_knapsack_dp(const shrink_knapsack *k, shrink_knapsack_solution *s, shrink_error *err);
void shrink_knapsack_solution_free(shrink_knapsack_solution *s);

typedef enum {
	SHRINK_OBJ_HAWQ,      /* sum of Omega = Tr(H)/n * ||dW||^2 (HAWQ-V2) */
	SHRINK_OBJ_KL,	      /* sum of the measured per-tensor KL */
	SHRINK_OBJ_PROXY,     /* sum of the layer-local tr(dW H dW^T) */
	SHRINK_OBJ_DECOUPLED, /* MixDQ: weight[0] Omega / N_Omega + weight[1] KL / N_KL */
} shrink_objective;

/* "hawq", "kl", "proxy", "decoupled"; parse returns -1 for an unknown name. */
const char *shrink_objective_name(shrink_objective o);
int shrink_objective_parse(const char *name);

typedef struct {
	int bits, group_size; /* group_size -1 matches every group size */
	double per_param;     /* cost of one weight in this scheme (time, bit operations, ...) */
} shrink_cost_entry;

typedef struct {
	shrink_objective objective;
	/* decoupled: each metric is normalised by its sum over tensors of its
	 * largest value (the total at the coarsest schemes, typically), so both run
	 * over about [0, 1]. With one weight 0 and cap > 0, that metric's normalised
	 * sum is constrained to at most cap while the other is minimised. */
	double weight[2];
	double cap;
	int64_t budget_bytes;		    /* the whole plan: allocated tensors plus everything kept fixed */
	const shrink_tensor_rule *min_bits; /* a tensor matching regex gets at least bits (later rules win) */
	int n_min_bits;
	const shrink_cost_entry *cost_table; /* optional: with cost_budget > 0, sum n_params * per_param <= it */
	int n_cost;
	double cost_budget;
	double time_limit; /* seconds; 0 none */
} shrink_alloc_params;

typedef struct {
	int n;		     /* tensors allocated */
	int *tensor;	     /* n: index into the calibration's tensors */
	int *entry;	     /* n: index into the plan's entries */
	int *scheme;	     /* n: the chosen candidate scheme (shrink_calib_scheme) */
	double *cost;	     /* n: the chosen scheme's cost under the objective */
	int64_t fixed_bytes; /* what the plan holds outside the allocation */
	double norm[2];	     /* decoupled: N_Omega, N_KL */
	shrink_knapsack_solution solution;
} shrink_allocation;

/* Choose schemes for the plan's quantized tensors that the calibration covers
 * (shapes must match) and rewrite those plan entries (scheme, bytes, totals).
 * Plan entries the calibration lacks stay as planned, inside the budget. A
 * missing metric (no traces for hawq, no KL for kl) is SHRINK_EINPUT naming
 * the tensor; a budget nothing fits is SHRINK_EINPUT giving the smallest
 * feasible budget in bytes and bits per weight. */
shrink_status shrink_allocate(const shrink_calibration *c, shrink_quant_plan *plan, const shrink_alloc_params *p,
			      shrink_allocation *a, shrink_error *err);
void shrink_allocation_free(shrink_allocation *a);

#endif
