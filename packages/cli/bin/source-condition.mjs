// A module resolve hook that adds the 'source' export condition, so that in a checkout the
// workspace packages resolve to their TypeScript src/ (see kexue.js).
export async function resolve(specifier, context, nextResolve) {
  return nextResolve(specifier, { ...context, conditions: [...context.conditions, 'source'] });
}
